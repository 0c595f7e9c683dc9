using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.L1;
using Xunit.Sdk;

namespace PbsMarket.Devnet.Tests;

/// <summary>
/// The real `pbs devnet` as a child process, itself a deployment of processes (Redis, PostgreSQL, anvil, the L2 engine, `pbs deploy`,
/// two `pbs relay`, `pbs l2node`, one `pbs proposer`, three `pbs builder`, `pbs l2users`). The tests of this class run one after the other (one devnet
/// at a time).
/// </summary>
public sealed class DevnetTests(ITestOutputHelper log)
{
    // 2 s slots: on a loaded 2-core machine 1 s slots left the proposer and builders too little time for anything to settle.
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
            var sum = summary.RootElement;
            Assert.True(sum.GetProperty("ok").GetBoolean(), sum.GetRawText());
            Assert.Equal(posted, sum.GetProperty("posted").GetInt32());
            // Wins, payments and bids of the run's slots only: the market also ran (and posted) before the first slot.
            var inRun = events.Where(e => e.Slot >= first && e.Slot <= last).ToList();
            Assert.True(events.Count > inRun.Count, "nothing was posted outside the run: this test would not tell a summary of all slots from one of the run");
            Assert.Equal(bids, sum.GetProperty("bids").GetInt32());
            Assert.Equal(inRun.Aggregate(BigInteger.Zero, (a, e) => a + e.Price).ToString(), sum.GetProperty("total_paid_wei").GetString());
            var summaryBuilders = sum.GetProperty("builders").EnumerateArray().ToList();
            Assert.Equal(bids, summaryBuilders.Sum(b => b.GetProperty("bids").GetInt32()));
            foreach (var b in summaryBuilders)
            {
                var address = Address.Parse(b.GetProperty("address").GetString()!);
                Assert.Equal(inRun.Count(e => e.Builder == address), b.GetProperty("wins").GetInt32());
                Assert.Equal(inRun.Where(e => e.Builder == address).Aggregate(BigInteger.Zero, (a, e) => a + e.Price).ToString(), b.GetProperty("paid_wei").GetString());
                Assert.True(b.GetProperty("bids_accepted").GetInt64() > 0, $"{b.GetProperty("name")}: no stats from the builder process");
            }
            Assert.True(summaryBuilders.Sum(b => b.GetProperty("wins").GetInt32()) <= 20, "more wins than slots");
            log.WriteLine($"{posted} posted, {missed} missed, {bids} bids ({bids / 20.0:0.0} per slot)");

            // The blocks executed: the banner names the L2 RPC, and the L2 node executed every header L1 holds for the run
            // from L1, with the users' transactions in them and none skipped (the relays simulated every bid).
            var l2Rpc = root.GetProperty("l2_rpc").GetString()!;
            Assert.Contains(pbs.Stdout.Split('\n'), l => l.TrimEnd() == $"L2 RPC {l2Rpc}");
            using (var l2 = new PbsMarket.L2.JsonRpcClient(l2Rpc, TimeSpan.FromSeconds(10)))
            {
                var txs = 0;
                foreach (var e in inRun)
                {
                    var b = await l2.CallAsync("pbs_blockOfHeader", [e.HeaderHash.ToString()]);
                    Assert.True(b.ValueKind == JsonValueKind.Object && b.GetProperty("on_l1").GetBoolean(), $"slot {e.Slot}: header {e.HeaderHash} is not an L2 block executed from L1");
                    Assert.Equal(0, b.GetProperty("skipped").GetArrayLength());
                    txs += b.GetProperty("tx_count").GetInt32();
                }
                Assert.True(txs > 0, "no L2 transaction was included in the run's blocks");
                Assert.Matches(@"L2: \d+ block\(s\) of the run executed by the L2 node from L1, \d+ transaction\(s\), none skipped", pbs.Stdout);
                log.WriteLine($"{txs} L2 transactions in the run's {inRun.Count} blocks");
            }

            // The relays post with the key from their keystore (no raw key in their config): a relay log shows its posts.
            var relayLogs = string.Concat(Directory.GetFiles(runtime, "relay-*.log").Select(File.ReadAllText));
            Assert.Contains("posting slots ", relayLogs);

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

    // Once skipped (ci15: every optimistic slot had no winner on the loaded machine, the close simulating last-moment bids
    // while the proposer waited); fixed by OptimisticCutoffMs, the close's claim and fewer engine round trips (docs/l2.md).
    [Fact]
    public async Task An_optimistic_devnet_serves_only_simulated_winners_and_demotes_no_honest_builder()
    {
        var runtime = NewRuntimeDir();
        using var cleanup = new DeleteOnDispose(runtime);
        await using var pbs = new PbsProcess("devnet", "--slot-ms", "2000", "--slots", "8", "--simulation", "optimistic", "--hold", "--runtime-dir", runtime);
        try
        {
            await pbs.WaitForLineAsync(l => l.StartsWith("holding:", StringComparison.Ordinal), TimeSpan.FromMinutes(4));
            log.WriteLine(pbs.Stdout);
            Assert.Contains("checks: ok", pbs.Stdout);
            Assert.Matches(@"L2: \d+ block\(s\) of the run executed by the L2 node from L1, \d+ transaction\(s\), none skipped", pbs.Stdout);
            using var info = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(runtime, "devnet.json")));
            var root = info.RootElement;
            var first = ulong.Parse(root.GetProperty("first_slot").GetString()!, CultureInfo.InvariantCulture);
            var last = ulong.Parse(root.GetProperty("last_slot").GetString()!, CultureInfo.InvariantCulture);
            var relay = root.GetProperty("relays").EnumerateArray().First().GetString()!;
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            var won = 0;
            for (var s = first; s <= last; s++)
            {
                using var slot = JsonDocument.Parse(await http.GetStringAsync($"{relay}/relay/v1/data/slots/{s}"));
                if (slot.RootElement.GetProperty("winner") is not { ValueKind: JsonValueKind.Object } winner) continue;
                won++;
                // The winner's block was simulated before its header was served.
                var hash = winner.GetProperty("header_hash").GetString();
                var bid = slot.RootElement.GetProperty("bids").EnumerateArray().Single(b => b.GetProperty("header_hash").GetString() == hash);
                Assert.Equal("valid", bid.GetProperty("simulation").GetString());
                Assert.True(bid.TryGetProperty("fees", out _), $"slot {s}: the winner has no simulated fees");
            }
            Assert.True(won > 0, "no slot of the optimistic run had a winner");
            using var demotions = JsonDocument.Parse(await http.GetStringAsync($"{relay}/relay/v1/data/demotions"));
            Assert.Equal("optimistic", demotions.RootElement.GetProperty("mode").GetString());
            Assert.Equal(0, demotions.RootElement.GetProperty("demotions").GetArrayLength()); // the demo builders are honest
            await pbs.WriteLineAsync("");
            var code = await pbs.WaitExitAsync(TimeSpan.FromSeconds(60));
            Assert.True(code == 0, $"exit {code}\n{pbs.Stdout}\n{pbs.Stderr}");
        }
        finally
        {
            log.WriteLine(pbs.Stderr);
        }
        AssertNothingLeft(runtime);
    }

    [Fact]
    public async Task The_devnet_is_separate_pbs_processes_from_config_files_and_keystores_and_SIGTERM_ends_them_all_and_frees_the_ports()
    {
        var runtime = NewRuntimeDir();
        using var cleanup = new DeleteOnDispose(runtime); // also when the test fails (disposed after the devnet)
        var port = FreePort();
        await using (var first = new PbsProcess("devnet", "--slot-ms", "2000", "--runtime-dir", runtime, "--port", port.ToString(CultureInfo.InvariantCulture)))
        {
            await first.WaitForLineAsync(l => l.StartsWith("slot ", StringComparison.Ordinal), TimeSpan.FromMinutes(3));
            var info = DevnetInfo.Read(runtime);
            var children = info.Processes.Where(p => p.Role is "relay" or "proposer" or "builder").ToList();
            Assert.Equal(2, children.Count(p => p.Role == "relay"));
            Assert.Single(children, p => p.Role == "proposer");
            Assert.Equal(3, children.Count(p => p.Role == "builder"));
            Assert.Single(info.Processes, p => p.Role == "deploy");
            Assert.Equal(children.Count, children.Select(p => p.Pid).Distinct().Count());
            Assert.DoesNotContain(first.Pid, children.Select(p => p.Pid));
            Assert.Equal($"http://127.0.0.1:{port}", children.First(p => p.Name == "relay-1").Url);
            foreach (var p in children)
            {
                Assert.True(PbsProcess.IsAlive(p.Pid), $"{p.Name} (pid {p.Pid}) is not running");
                Assert.Equal(first.Pid, PbsProcess.ParentPid(p.Pid)); // the devnet's own child, not a thread of it
                // It runs `pbs ROLE --config FILE` (the apphost, or `dotnet pbs.dll`) from the file devnet.json names.
                var args = PbsProcess.CommandLine(p.Pid)!;
                var at = Array.IndexOf(args, p.Role);
                Assert.True(at > 0 && at + 2 < args.Length && args[at + 1] == "--config" && args[at + 2] == p.Config, $"{p.Name}: {string.Join(' ', args)}");
                Assert.Matches(@"(^|/)pbs(\.dll)?$", args[at - 1]);
                Assert.StartsWith(runtime, p.Config, StringComparison.Ordinal);
                var config = await File.ReadAllTextAsync(p.Config);
                Assert.NotEmpty(p.Keystores);
                foreach (var k in p.Keystores)
                {
                    Assert.Contains(JsonEncodedText.Encode(k).ToString(), config, StringComparison.Ordinal); // the config file points at its keystore
                    Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(k));
                    using var ks = JsonDocument.Parse(await File.ReadAllTextAsync(k));
                    Assert.Equal("scrypt", ks.RootElement.GetProperty("crypto").GetProperty("kdf").GetString()); // Web3 Secret Storage
                }
                Assert.DoesNotMatch("0x[0-9a-fA-F]{64}", config); // no raw key in a config file
                // Its log (the first slots can be final before a child has written anything).
                var logDeadline = DateTime.UtcNow.AddSeconds(60);
                while (!(File.Exists(p.Log) && new FileInfo(p.Log).Length > 0) && DateTime.UtcNow < logDeadline) await Task.Delay(100);
                Assert.True(File.Exists(p.Log) && new FileInfo(p.Log).Length > 0, $"{p.Name}: nothing in its log {p.Log}");
            }
            // Every key file and password file is readable by its owner only.
            var keyFiles = Directory.GetFiles(Path.Combine(runtime, "keys"));
            Assert.Contains(keyFiles, f => f.EndsWith(".password", StringComparison.Ordinal));
            foreach (var f in keyFiles) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(f));

            // A second `pbs proposer` on the same data folder refuses to start (exit 2), naming the folder and the holder.
            var proposer = children.Single(p => p.Role == "proposer");
            var (code2nd, _, stderr2nd) = await PbsProcess.RunAsync(TimeSpan.FromSeconds(90), "proposer", "--config", proposer.Config);
            Assert.True(code2nd == 2, $"a second proposer on the same folder: exit {code2nd}\n{stderr2nd}");
            Assert.Contains($"the data folder {Path.Combine(runtime, "proposer")} is in use by another pbs proposer (pid {proposer.Pid}", stderr2nd);
            Assert.True(PbsProcess.IsAlive(proposer.Pid), "the running proposer must be left alone");

            first.Terminate();
            var code = await first.WaitExitAsync(TimeSpan.FromSeconds(90));
            Assert.True(code == 0, $"SIGTERM: exit {code}\n{first.Stderr}");
            Assert.Contains("stopped: every server", first.Stdout);
            foreach (var pid in info.AllPids)
                Assert.True(WaitGone(pid), $"pid {pid} still runs after the devnet stopped: {string.Join(' ', PbsProcess.CommandLine(pid) ?? [])}");
            foreach (var p in info.Ports)
                Assert.False(await ListensAsync(p), $"port {p} still answers after the devnet stopped");
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

    [Fact]
    public async Task A_devnet_killed_with_SIGKILL_has_its_pbs_processes_and_servers_ended_by_the_watchdog()
    {
        var runtime = NewRuntimeDir();
        using var cleanup = new DeleteOnDispose(runtime);
        await using var pbs = new PbsProcess("devnet", "--slot-ms", "2000", "--runtime-dir", runtime);
        await pbs.WaitForLineAsync(l => l.StartsWith("slot ", StringComparison.Ordinal), TimeSpan.FromMinutes(3));
        var info = DevnetInfo.Read(runtime);
        // Two relays, the proposer, three builders, the L2 node and the L2 users.
        Assert.Equal(8, info.Processes.Count(p => p.Role != "deploy" && PbsProcess.IsAlive(p.Pid)));
        Assert.Single(info.Processes, p => p.Role == "l2node");
        Assert.Single(info.Processes, p => p.Role == "l2users");
        pbs.KillHard();
        await pbs.WaitExitAsync(TimeSpan.FromSeconds(30));
        foreach (var pid in info.AllPids)
            Assert.True(WaitGone(pid), $"pid {pid} outlived the killed devnet: {string.Join(' ', PbsProcess.CommandLine(pid) ?? [])}");
        AssertNothingLeft(runtime);
    }

    [Fact]
    public async Task A_child_that_dies_ends_the_devnet_with_exit_1_naming_it_and_showing_its_log()
    {
        var runtime = NewRuntimeDir();
        using var cleanup = new DeleteOnDispose(runtime);
        await using var pbs = new PbsProcess("devnet", "--slot-ms", "2000", "--runtime-dir", runtime);
        await pbs.WaitForLineAsync(l => l.StartsWith("slot ", StringComparison.Ordinal), TimeSpan.FromMinutes(3));
        var info = DevnetInfo.Read(runtime);
        var victim = info.Processes.Single(p => p.Name == "builder-2");
        // Once it has said what it does (the first slots can be final before the builders are up).
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!File.ReadAllText(victim.Log).Contains("pbs builder: builder-2", StringComparison.Ordinal) && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.True(PbsProcess.Signal(victim.Pid, 9));
        var code = await pbs.WaitExitAsync(TimeSpan.FromSeconds(90));
        log.WriteLine(pbs.Stderr);
        Assert.Equal(1, code);
        Assert.Contains($"builder-2 (pid {victim.Pid}, `pbs builder --config {victim.Config}`) exited on its own", pbs.Stderr);
        Assert.Contains("pbs builder: builder-2", pbs.Stderr); // the tail of its log
        Assert.Contains("stopped: every server", pbs.Stdout);
        foreach (var pid in info.AllPids) Assert.True(WaitGone(pid), $"pid {pid} still runs");
        AssertNothingLeft(runtime);
    }

    [Fact]
    public async Task A_proposer_killed_right_after_it_signed_restarts_on_its_journal_and_signs_no_other_header_for_that_slot()
    {
        var runtime = NewRuntimeDir();
        using var cleanup = new DeleteOnDispose(runtime);
        // The devnet without its proposer: this test runs (and kills) `pbs proposer` itself, from the devnet's config.
        await using var devnet = new PbsProcess("devnet", "--slot-ms", "2000", "--no-proposer", "--runtime-dir", runtime);
        await devnet.WaitForLineAsync(l => l.StartsWith("following the market", StringComparison.Ordinal), TimeSpan.FromMinutes(3));
        using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(runtime, "devnet.json")));
        var config = doc.RootElement.GetProperty("proposer_config").GetString()!;
        var signed = new System.Text.RegularExpressions.Regex(@"slot (\d+) led by (0x[0-9a-f]{40}): .*header (0x[0-9a-f]{64})");
        // The kill follows a slot it proposed (the relay stored the proposal and gave the payload): a slot it signed but
        // the relay refused (its first duty can start too late for the slot) is journaled too, but no relay holds it.
        var proposed = new System.Text.RegularExpressions.Regex(@"slot (\d+) led by (0x[0-9a-f]{40}): proposed via .*header (0x[0-9a-f]{64})");
        System.Text.RegularExpressions.Match m;
        await using (var first = new PbsProcess("proposer", "--config", config))
        {
            var line = await first.WaitForLineAsync(proposed.IsMatch, TimeSpan.FromMinutes(2));
            first.KillHard(); // right after it signed and proposed the slot
            await first.WaitExitAsync(TimeSpan.FromSeconds(30));
            m = proposed.Match(line);
        }
        var slot = ulong.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        var header = m.Groups[3].Value;
        var journal = Path.Combine(runtime, "proposer", "signing", m.Groups[2].Value + ".json");
        string? Recorded()
        {
            using var j = JsonDocument.Parse(File.ReadAllText(journal));
            return j.RootElement.GetProperty("entries").EnumerateArray()
                .Where(e => e.GetProperty("slot").GetString() == slot.ToString(CultureInfo.InvariantCulture))
                .Select(e => e.GetProperty("header_hash").GetString()).SingleOrDefault();
        }
        // The decision was on disk before the signature left the process, so the kill cannot have lost it.
        Assert.Equal(header, Recorded());

        await using (var second = new PbsProcess("proposer", "--config", config))
        {
            // It starts on the same folder (the kernel released the killed one's lock) and goes on signing later slots.
            await second.WaitForLineAsync(l => signed.Match(l) is { Success: true } x && ulong.Parse(x.Groups[1].Value, CultureInfo.InvariantCulture) > slot, TimeSpan.FromMinutes(2));
            foreach (var l in second.Stdout.Split('\n'))
                if (signed.Match(l) is { Success: true } x && x.Groups[1].Value == m.Groups[1].Value)
                    Assert.Equal(header, x.Groups[3].Value); // it may re-sign the same header; never another one
            second.Terminate();
            var code = await second.WaitExitAsync(TimeSpan.FromSeconds(60));
            Assert.True(code == 0, $"SIGTERM: exit {code}\n{second.Stderr}");
        }
        Assert.Equal(header, Recorded());

        // Every relay and L1 hold that header for the slot, and no other.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        foreach (var relay in doc.RootElement.GetProperty("relays").EnumerateArray().Select(r => r.GetString()!))
        {
            using var view = JsonDocument.Parse(await http.GetStringAsync($"{relay}/relay/v1/data/slots/{slot}"));
            Assert.Equal(header, view.RootElement.GetProperty("proposed_header_hash").GetString());
        }
        var deployment = DeployedMarket.Load(doc.RootElement.GetProperty("deployment").GetString()!);
        var inbox = new InboxClient(L1Rpc.Connect(doc.RootElement.GetProperty("l1_rpc").GetString()!, TimeSpan.FromSeconds(10)), deployment);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        IReadOnlyList<HeaderPostedLog> posted;
        while ((posted = (await inbox.GetHeaderPostedAsync(deployment.DeployedAtBlock)).Where(e => e.Slot == slot).ToList()).Count == 0 && DateTime.UtcNow < deadline)
            await Task.Delay(500);
        Assert.Equal(header, Assert.Single(posted).HeaderHash.ToString());

        devnet.Terminate();
        Assert.Equal(0, await devnet.WaitExitAsync(TimeSpan.FromSeconds(90)));
        AssertNothingLeft(runtime);
    }

    static bool WaitGone(int pid)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (PbsProcess.IsAlive(pid) && DateTime.UtcNow < deadline) Thread.Sleep(100);
        return !PbsProcess.IsAlive(pid);
    }

    static async Task<bool> ListensAsync(int port)
    {
        using var c = new TcpClient();
        try
        {
            await c.ConnectAsync(IPAddress.Loopback, port).WaitAsync(TimeSpan.FromSeconds(5));
            return true;
        }
        catch (Exception e) when (e is SocketException or TimeoutException)
        {
            return false;
        }
    }

    static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}

/// <summary>What devnet.json says about the devnet's processes and servers.</summary>
sealed record DevnetInfo(IReadOnlyList<DevnetInfo.Child> Processes, IReadOnlyList<(string Kind, int Pid, int Port)> Servers)
{
    public sealed record Child(string Name, string Role, int Pid, string Config, IReadOnlyList<string> Keystores, string Log, string? Url);

    public IEnumerable<int> AllPids => Processes.Select(p => p.Pid).Concat(Servers.Select(x => x.Pid));

    /// <summary>Every port the devnet listened on: the relays' and the servers'.</summary>
    public IEnumerable<int> Ports => Processes.Where(p => p.Url is not null).Select(p => new Uri(p.Url!).Port).Concat(Servers.Select(x => x.Port));

    public static DevnetInfo Read(string runtime)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(runtime, "devnet.json")));
        var r = doc.RootElement;
        var children = r.GetProperty("processes").EnumerateArray().Select(p => new Child(
            p.GetProperty("name").GetString()!, p.GetProperty("role").GetString()!, p.GetProperty("pid").GetInt32(), p.GetProperty("config").GetString()!,
            [.. p.GetProperty("keystores").EnumerateArray().Select(k => k.GetString()!)], p.GetProperty("log").GetString()!,
            p.GetProperty("url").ValueKind == JsonValueKind.String ? p.GetProperty("url").GetString() : null)).ToList();
        var servers = r.GetProperty("servers").EnumerateArray().Select(x => (x.GetProperty("kind").GetString()!, x.GetProperty("pid").GetInt32(), x.GetProperty("port").GetInt32())).ToList();
        return new DevnetInfo(children, servers);
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
