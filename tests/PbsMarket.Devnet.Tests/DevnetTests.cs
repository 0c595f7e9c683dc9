using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.L1;
using Xunit.Sdk;

namespace PbsMarket.Devnet.Tests;

/// <summary>
/// The real `pbs devnet` as a child process (Redis, PostgreSQL, anvil, two relays, the proposer client, three demo
/// builders). The tests of this class run one after the other (one devnet at a time).
/// </summary>
public sealed class DevnetTests(ITestOutputHelper log)
{
    // 2 s slots: the whole market runs in one process next to the test host; on a loaded 2-core machine 1 s slots
    // left the proposer and builders too little time for anything to settle.
    static string NewRuntimeDir() => Path.Combine(Path.GetTempPath(), $"pbs-devnet-test-{Guid.NewGuid():N}"[..30]);

    static void AssertNothingLeft(string runtimeDir)
    {
        // Wait (up to 30 s on a loaded machine) for the kernel to reap; anything still there names the runtime folder
        // in its command line.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (PbsProcess.Pgrep(runtimeDir).Length > 0 && DateTime.UtcNow < deadline) Thread.Sleep(100);
        Assert.True(PbsProcess.Pgrep(runtimeDir).Length == 0, $"left running:\n{PbsProcess.Pgrep(runtimeDir)}");
    }

    [Fact]
    public async Task Devnet_runs_20_slots_and_L1_the_data_API_and_the_balances_agree()
    {
        var runtime = NewRuntimeDir();
        using var cleanup = new DeleteOnDispose(runtime); // also when the test fails (disposed after the devnet)
        await using var pbs = new PbsProcess("devnet", "--slot-ms", "2000", "--slots", "20", "--hold", "--runtime-dir", runtime);
        try
        {
            await pbs.WaitForLineAsync(l => l.StartsWith("holding:", StringComparison.Ordinal), TimeSpan.FromMinutes(4));
            log.WriteLine(pbs.Stdout);
            using var info = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(runtime, "devnet.json")));
            var root = info.RootElement;
            var first = ulong.Parse(root.GetProperty("first_slot").GetString()!, CultureInfo.InvariantCulture);
            var last = ulong.Parse(root.GetProperty("last_slot").GetString()!, CultureInfo.InvariantCulture);
            Assert.Equal(20UL, last - first + 1);
            var deployment = DeployedMarket.Load(root.GetProperty("deployment").GetString()!);
            var inbox = new InboxClient(L1Rpc.Connect(root.GetProperty("l1_rpc").GetString()!, TimeSpan.FromSeconds(10)), deployment);
            var events = await inbox.GetHeaderPostedAsync(deployment.DeployedAtBlock);
            Assert.Equal(events.Count, events.Select(e => e.Slot).Distinct().Count());
            var relays = root.GetProperty("relays").EnumerateArray().Select(r => r.GetString()!).ToList();
            Assert.Equal(2, relays.Count);

            int posted = 0, missed = 0, bids = 0;
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            for (var s = first; s <= last; s++)
            {
                var onL1 = events.FirstOrDefault(e => e.Slot == s);
                // Both relays serve the same market: they must say the same thing.
                var views = new List<JsonElement>();
                foreach (var relay in relays)
                {
                    using var r = await http.GetAsync($"{relay}/relay/v1/data/slots/{s}");
                    if (r.StatusCode == HttpStatusCode.NotFound) { views.Add(default); continue; }
                    r.EnsureSuccessStatusCode();
                    views.Add(JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone());
                }
                if (views[0].ValueKind == JsonValueKind.Undefined)
                {
                    // No auction at all (the devnet reports it as missed, "no auction on the relays"): then nothing on L1 either.
                    Assert.True(onL1 is null, $"slot {s}: on L1 but unknown to the data API");
                    Assert.Equal(JsonValueKind.Undefined, views[1].ValueKind);
                    missed++;
                    continue;
                }
                Assert.Equal(views[0].GetRawText(), views[1].GetRawText());
                var v = views[0];
                var status = v.GetProperty("status").GetString();
                bids += int.Parse(v.GetProperty("bid_count").GetString()!, CultureInfo.InvariantCulture);
                if (status == "posted")
                {
                    posted++;
                    Assert.True(onL1 is not null, $"slot {s}: posted per the data API but no HeaderPosted event");
                    Assert.Equal(v.GetProperty("proposed_header_hash").GetString(), onL1!.HeaderHash.ToString());
                    Assert.Equal(v.GetProperty("proposer").GetString(), onL1.Proposer.ToString());
                    var winner = v.GetProperty("winner");
                    if (winner.ValueKind == JsonValueKind.Object && winner.GetProperty("header_hash").GetString() == onL1.HeaderHash.ToString())
                    {
                        Assert.Equal(BigInteger.Parse(v.GetProperty("price").GetString()!, CultureInfo.InvariantCulture), onL1.Price);
                        Assert.Equal(winner.GetProperty("builder").GetString(), onL1.Builder.ToString());
                        Assert.Equal(v.GetProperty("bids_root").GetString(), onL1.BidsRoot.ToString());
                    }
                    else
                    {
                        Assert.Equal(BigInteger.Zero, onL1.Price); // the proposer's own block pays nothing
                    }
                }
                else
                {
                    Assert.True(status == "missed", $"slot {s}: neither posted nor missed: {v.GetRawText()}");
                    Assert.False(string.IsNullOrWhiteSpace(v.GetProperty("missed_reason").GetString()), $"slot {s}: missed without a reason");
                    Assert.True(onL1 is null, $"slot {s}: missed per the data API but L1 holds {onL1?.HeaderHash}");
                    missed++;
                }
            }
            Assert.Equal(20, posted + missed);
            Assert.True(posted > 0, "no slot was posted");

            // Escrow and earnings moved by exactly the prices of every posted header.
            foreach (var b in root.GetProperty("builders").EnumerateArray())
            {
                var address = Address.Parse(b.GetProperty("address").GetString()!);
                var collateral = BigInteger.Parse(b.GetProperty("collateral_wei").GetString()!, CultureInfo.InvariantCulture);
                var paid = events.Where(e => e.Builder == address).Aggregate(BigInteger.Zero, (a, e) => a + e.Price);
                // Collateral is allocated per relay (v2); the devnet's relays share one signing address.
                var relay = Assert.Single(events.Select(e => e.Relay).Where(r => !r.IsZero).Distinct());
                Assert.Equal(collateral - paid, await inbox.EscrowBalanceAsync(address, relay));
            }
            foreach (var p in root.GetProperty("proposers").EnumerateArray())
            {
                var address = Address.Parse(p.GetString()!);
                Assert.Equal(events.Where(e => e.Proposer == address).Aggregate(BigInteger.Zero, (a, e) => a + e.Price), await inbox.EarningsOfAsync(address));
            }
            Assert.True(events.Sum(e => e.Price > 0 ? 1 : 0) > 0, "no builder paid anything: the auctions never settled");

            using var summary = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(runtime, "summary.json")));
            Assert.True(summary.RootElement.GetProperty("ok").GetBoolean(), summary.RootElement.GetRawText());
            Assert.Equal(posted, summary.RootElement.GetProperty("posted").GetInt32());
            log.WriteLine($"{posted} posted, {missed} missed, {bids} bids ({bids / 20.0:0.0} per slot)");

            await pbs.WriteLineAsync("");
            var code = await pbs.WaitExitAsync(TimeSpan.FromSeconds(60));
            Assert.True(code == 0, $"exit {code}\n{pbs.Stdout}\n{pbs.Stderr}");
        }
        finally
        {
            log.WriteLine(pbs.Stderr);
        }
        AssertNothingLeft(runtime);
        Directory.Delete(runtime, recursive: true);
    }

    [Fact]
    public async Task Ctrl_C_stops_everything_and_a_second_devnet_on_the_same_folder_and_port_works_right_after()
    {
        var runtime = NewRuntimeDir();
        using var cleanup = new DeleteOnDispose(runtime); // also when the test fails (disposed after the devnet)
        var port = FreePort();
        await using (var first = new PbsProcess("devnet", "--slot-ms", "2000", "--runtime-dir", runtime, "--port", port.ToString(CultureInfo.InvariantCulture)))
        {
            await first.WaitForLineAsync(l => l.StartsWith("slot ", StringComparison.Ordinal), TimeSpan.FromMinutes(3));
            Assert.NotEmpty(PbsProcess.Pgrep(runtime)); // its servers are running
            first.Interrupt();
            var code = await first.WaitExitAsync(TimeSpan.FromSeconds(60));
            Assert.True(code == 0, $"Ctrl-C: exit {code}\n{first.Stderr}");
            Assert.Contains("stopped: every server", first.Stdout);
        }
        AssertNothingLeft(runtime);

        var (code2, stdout2, stderr2) = await PbsProcess.RunAsync(TimeSpan.FromMinutes(3),
            "devnet", "--slot-ms", "2000", "--slots", "3", "--runtime-dir", runtime, "--port", port.ToString(CultureInfo.InvariantCulture));
        log.WriteLine(stdout2);
        Assert.True(code2 == 0, $"second devnet: exit {code2}\n{stdout2}\n{stderr2}");
        Assert.Contains($"http://127.0.0.1:{port}", stdout2);
        Assert.Contains("checks: ok", stdout2);
        AssertNothingLeft(runtime);
        Directory.Delete(runtime, recursive: true);
    }

    static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}

/// <summary>Deletes a devnet's runtime folder when the test is done, passed or not.</summary>
sealed class DeleteOnDispose(string dir) : IDisposable
{
    public void Dispose()
    {
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // still in use: the harness's leak check names it
        }
    }
}
