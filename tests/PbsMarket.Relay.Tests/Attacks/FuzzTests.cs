using System.Diagnostics;
using System.Text;
using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests.Attacks;

/// <summary>
/// Thousands of random and mutated requests to every endpoint: no 5xx, no hang, no state change. The seed is
/// printed; replay a failure with PBS_FUZZ_SEED=&lt;seed&gt; (and PBS_FUZZ_COUNT to change the number of requests).
/// </summary>
public sealed class FuzzTests(TestServers servers, ITestOutputHelper output) : MarketTest(servers)
{
    static readonly string[] Paths =
    [
        "relay/v1/builder/auction", "relay/v1/builder/bids", "relay/v1/proposer/header/{slot}", "relay/v1/proposer/proposals",
        "relay/v1/proposer/heads", "relay/v1/proposer/head", "relay/v1/data/slots", "relay/v1/data/slots/{slot}",
        "relay/v1/data/slots/{slot}/proof/{hash}", "relay/v1/data/builders", "relay/v1/data/proposers", "livez", "metrics",
    ];

    static readonly string[] Numbers =
    [
        "0", "1", "-1", "18446744073709551615", "18446744073709551616", "9223372036854775807", "9223372036854775808", "01", "1e3", "0x10",
        " 1", "", "99999999999999999999999999999999999999999999999999999999999999999999999999999999", "NaN", "3.5",
    ];

    [Fact]
    public async Task Random_and_mutated_requests_to_every_endpoint_get_no_5xx_no_hang_and_change_nothing()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("PBS_FUZZ_SEED"), out var s) ? s : Random.Shared.Next();
        var count = int.TryParse(Environment.GetEnvironmentVariable("PBS_FUZZ_COUNT"), out var n) ? n : 2000;
        output.WriteLine($"fuzz seed {seed} ({count} requests); replay with PBS_FUZZ_SEED={seed}");
        Console.WriteLine($"FuzzTests: seed {seed}; replay with PBS_FUZZ_SEED={seed}");
        var rng = new Random(seed);

        var a = await Market.NextAuctionAsync(Relay.Client, 300);
        // Seeds for mutation: a bid already accepted (so a re-send is a duplicate, not a change), a proposal and an announcement.
        var accepted = TestMarket.Bid(a, TestMarket.Builders[0], 4_000);
        await Relay.Client.SubmitAsync(accepted.Header, accepted.Signature, accepted.Payload);
        var bidBody = Wire.ToUtf8(new BidSubmission(accepted.Header, accepted.Signature, accepted.Payload), Wire.WriteBidSubmission);
        var proposalBody = ProposalBody(a.Slot - 1, Keccak.Hash("fuzz"u8), TestMarket.Builders[1]);
        var headBody = AttackHelpers.Announcement(Market, a.Slot + 5, Hash32.Zero, 1);
        byte[][] bodies = [bidBody, proposalBody, headBody, "{}"u8.ToArray(), "[]"u8.ToArray(), "null"u8.ToArray()];

        // Let that slot close, its debt be booked and (unproposed) released, so the only changes left are the fuzzer's.
        await Market.WaitClosedAsync(a.Slot + 1);
        await Task.Delay(500);
        var before = await AttackHelpers.SnapshotAsync(Market, k => !EdgeAttackTests.StateKey(k));
        var clients = Enumerable.Range(0, 8).Select(i => AttackHelpers.ClientFrom(Relay.Url, $"127.0.1.{10 + i}", TimeSpan.FromSeconds(10))).ToArray();
        var failures = new List<string>();
        var sw = Stopwatch.StartNew();
        var statuses = new Dictionary<int, int>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var path = Paths[rng.Next(Paths.Length)]
                    .Replace("{slot}", rng.Next(3) == 0 ? Numbers[rng.Next(Numbers.Length)] : (a.Slot - (ulong)rng.Next(0, 5)).ToString())
                    .Replace("{hash}", rng.Next(2) == 0 ? Keccak.Hash(BitConverter.GetBytes(rng.Next())).ToString() : "0x" + new string('f', rng.Next(0, 70)));
                if (path == "relay/v1/data/slots" && rng.Next(2) == 0)
                    path += $"?limit={Numbers[rng.Next(Numbers.Length)]}&cursor={Numbers[rng.Next(Numbers.Length)]}";
                if (rng.Next(20) == 0) path += "/" + RandomAscii(rng, rng.Next(1, 40));
                var post = path.EndsWith("bids", StringComparison.Ordinal) || path.EndsWith("proposals", StringComparison.Ordinal) || path.EndsWith("heads", StringComparison.Ordinal)
                    ? rng.Next(10) != 0 : rng.Next(10) == 0;
                byte[]? body = null;
                if (post)
                {
                    body = rng.Next(5) == 0 ? RandomBytes(rng, rng.Next(0, 2000)) : Mutate(rng, bodies[rng.Next(bodies.Length)]);
                }
                var headers = new Dictionary<string, string>();
                if (rng.Next(3) == 0) headers["X-Pbs-Signature"] = rng.Next(2) == 0 ? "0x" + Convert.ToHexStringLower(RandomBytes(rng, 65)) : RandomAscii(rng, rng.Next(0, 200));
                var contentType = rng.Next(8) switch { 0 => "text/plain", 1 => "application/json; charset=utf-16", 2 => RandomAscii(rng, 12), _ => "application/json" };
                var client = clients[rng.Next(clients.Length)];
                var started = sw.Elapsed;
                try
                {
                    var (status, code, text) = await AttackHelpers.SendAsync(client, post ? HttpMethod.Post : HttpMethod.Get, path, body, contentType, headers);
                    statuses[status] = statuses.GetValueOrDefault(status) + 1;
                    if (status >= 500 && code != "unavailable")
                        failures.Add($"#{i} {(post ? "POST" : "GET")} {path}: {status} {code} {text[..Math.Min(300, text.Length)]}");
                    if (status == 202) failures.Add($"#{i} POST {path}: a mutated bid was accepted: {text}");
                }
                catch (Exception e) when (e is TaskCanceledException or HttpRequestException)
                {
                    failures.Add($"#{i} {(post ? "POST" : "GET")} {path}: no answer ({e.GetType().Name}: {e.Message}) after {(sw.Elapsed - started).TotalSeconds:0.0} s");
                }
                if (failures.Count > 20) break;
            }
        }
        finally
        {
            foreach (var c in clients) c.Dispose();
        }
        output.WriteLine($"{count} requests in {sw.Elapsed.TotalSeconds:0.0} s; statuses: {string.Join(", ", statuses.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}×{kv.Value}"))}");
        Assert.True(failures.Count == 0, $"seed {seed} (replay with PBS_FUZZ_SEED={seed}):\n" + string.Join("\n", failures));
        Assert.Equal(before, await AttackHelpers.SnapshotAsync(Market, k => !EdgeAttackTests.StateKey(k)));
    }

    static byte[] RandomBytes(Random rng, int n)
    {
        var b = new byte[n];
        rng.NextBytes(b);
        return b;
    }

    static string RandomAscii(Random rng, int n)
    {
        const string chars = "abcdefghijklmnopqrstuvwxyz0123456789-_.~%{}\"' :,[]0x";
        return new string(Enumerable.Range(0, n).Select(_ => chars[rng.Next(chars.Length)]).ToArray());
    }

    /// <summary>A few byte- or token-level edits: flip, insert, delete, duplicate a span, swap a number for an edge value.</summary>
    static byte[] Mutate(Random rng, byte[] seed)
    {
        var b = new List<byte>(seed);
        var edits = rng.Next(1, 5);
        for (var e = 0; e < edits && b.Count > 0; e++)
        {
            var at = rng.Next(b.Count);
            switch (rng.Next(6))
            {
                case 0: b[at] ^= (byte)(1 << rng.Next(8)); break;
                case 1: b.Insert(at, (byte)rng.Next(256)); break;
                case 2: b.RemoveRange(at, Math.Min(rng.Next(1, 16), b.Count - at)); break;
                case 3:
                    var len = Math.Min(rng.Next(1, 64), b.Count - at);
                    b.InsertRange(at, b.GetRange(at, len));
                    break;
                case 4:
                    var text = Encoding.UTF8.GetString([.. b]);
                    var q = text.IndexOf(":\"", rng.Next(text.Length), StringComparison.Ordinal);
                    if (q > 0)
                    {
                        var end = text.IndexOf('"', q + 2);
                        if (end > 0) text = text[..(q + 2)] + Numbers[rng.Next(Numbers.Length)] + text[end..];
                    }
                    b = [.. Encoding.UTF8.GetBytes(text)];
                    break;
                default: b.RemoveRange(at, b.Count - at); break;
            }
        }
        return [.. b];
    }
}
