using System.Diagnostics;
using System.Text;
using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests.Attacks;

/// <summary>Cursor, limit and every numeric path, query and body field at its edges: bounded work, precise 4xx codes.</summary>
public sealed class EdgeAttackTests(TestServers servers) : MarketTest(servers)
{
    static readonly BigInteger MaxU256 = (BigInteger.One << 256) - 1;

    internal static bool StateKey(string key) =>
        key.EndsWith(":head", StringComparison.Ordinal) || key.EndsWith(":proposal", StringComparison.Ordinal) || key.EndsWith(":evidence", StringComparison.Ordinal)
        || key.EndsWith(":l1queue", StringComparison.Ordinal) || key.EndsWith(":l1evidence", StringComparison.Ordinal) || key.Contains(":ledger:", StringComparison.Ordinal)
        || key.EndsWith(":bids", StringComparison.Ordinal) || key.EndsWith(":payloads", StringComparison.Ordinal) || key.EndsWith(":counts", StringComparison.Ordinal);

    [Fact]
    public async Task A_cursor_of_a_trillion_answers_at_once_with_the_newest_page()
    {
        using var http = AttackHelpers.ClientFrom(Relay.Url, "127.0.0.21", TimeSpan.FromSeconds(5));
        var sw = Stopwatch.StartNew();
        var (status, _, body) = await AttackHelpers.SendAsync(http, HttpMethod.Get, "relay/v1/data/slots?cursor=1000000000000&limit=200");
        Assert.Equal(200, status);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(3), $"took {sw.Elapsed}");
        // The page is the newest one: its first slot is the open auction's (or just below), not a trillion.
        using var doc = System.Text.Json.JsonDocument.Parse(body);
        var slots = doc.RootElement.GetProperty("slots").EnumerateArray().Select(s => ulong.Parse(s.GetProperty("slot").GetString()!)).ToList();
        Assert.NotEmpty(slots);
        Assert.True(slots[0] <= Market.Clock.CurrentSlot + 2, $"first slot {slots[0]}");

        // The largest cursor and a few walks: each request does at most `limit` Redis lookups.
        foreach (var q in new[] { "cursor=18446744073709551615", "cursor=18446744073709551615&limit=1", "cursor=0", "cursor=1&limit=200" })
        {
            sw.Restart();
            var (st, code, text) = await AttackHelpers.SendAsync(http, HttpMethod.Get, $"relay/v1/data/slots?{q}");
            Assert.True(st == 200, $"{q}: {st} {code} {text}");
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(3), $"{q} took {sw.Elapsed}");
        }
    }

    [Fact]
    public async Task Numeric_edges_on_every_path_query_and_body_field_answer_precise_4xx_and_change_nothing()
    {
        var a = await Market.NextAuctionAsync(Relay.Client, 500);
        var before = await AttackHelpers.SnapshotAsync(Market, k => !StateKey(k));
        using var http = AttackHelpers.ClientFrom(Relay.Url, "127.0.0.22");
        const string max = "18446744073709551615", over = "18446744073709551616", huge = "99999999999999999999999999999999999999999";
        var proposer = Market.ProposerOf(a.Slot);
        var b0 = TestMarket.Builders[0];

        byte[] BidWith(Func<Header, Header> tweak)
        {
            var bid = TestMarket.Bid(a!, b0, 5_000, tweak: tweak);
            return Wire.ToUtf8(new BidSubmission(bid.Header, bid.Signature, bid.Payload), Wire.WriteBidSubmission);
        }
        byte[] Replace(byte[] body, string field, string value)
        {
            var json = Encoding.UTF8.GetString(body);
            var i = json.IndexOf($"\"{field}\":\"", StringComparison.Ordinal);
            var start = i + field.Length + 4;
            var end = json.IndexOf('"', start);
            return Encoding.UTF8.GetBytes(json[..start] + value + json[end..]);
        }
        byte[] Valid() => BidWith(h => h);
        var sig = proposer.Sign(Eip712.Digest(Market.Domain, new HeaderRequest(ulong.MaxValue, proposer.Address))).ToString();

        (string Name, HttpMethod Method, string Path, Func<byte[]?> Body, Dictionary<string, string>? Headers, int Status, string Code)[] cases =
        [
            ("data slot max", HttpMethod.Get, $"relay/v1/data/slots/{max}", () => null, null, 400, "out_of_range"),
            ("data slot over", HttpMethod.Get, $"relay/v1/data/slots/{over}", () => null, null, 400, "malformed"),
            ("data slot negative", HttpMethod.Get, "relay/v1/data/slots/-1", () => null, null, 400, "malformed"),
            ("data slot long.Max+1", HttpMethod.Get, "relay/v1/data/slots/9223372036854775808", () => null, null, 400, "out_of_range"),
            ("data slot far, in range", HttpMethod.Get, "relay/v1/data/slots/4000000000", () => null, null, 404, "not_found"),
            ("proof slot max", HttpMethod.Get, $"relay/v1/data/slots/{max}/proof/0x{new string('0', 64)}", () => null, null, 400, "out_of_range"),
            ("limit 0", HttpMethod.Get, "relay/v1/data/slots?limit=0", () => null, null, 400, "out_of_range"),
            ("limit 201", HttpMethod.Get, "relay/v1/data/slots?limit=201", () => null, null, 400, "out_of_range"),
            ("limit max", HttpMethod.Get, $"relay/v1/data/slots?limit={max}", () => null, null, 400, "out_of_range"),
            ("limit huge", HttpMethod.Get, $"relay/v1/data/slots?limit={huge}", () => null, null, 400, "malformed"),
            ("limit negative", HttpMethod.Get, "relay/v1/data/slots?limit=-5", () => null, null, 400, "malformed"),
            ("cursor over", HttpMethod.Get, $"relay/v1/data/slots?cursor={over}", () => null, null, 400, "malformed"),
            ("header slot max", HttpMethod.Get, $"relay/v1/proposer/header/{max}", () => null, new() { ["X-Pbs-Signature"] = sig }, 400, "out_of_range"),
            ("header slot over", HttpMethod.Get, $"relay/v1/proposer/header/{over}", () => null, new() { ["X-Pbs-Signature"] = sig }, 400, "malformed"),
            ("bid slot max", HttpMethod.Post, "relay/v1/builder/bids", () => BidWith(h => h with { Slot = ulong.MaxValue }), null, 400, "out_of_range"),
            ("bid slot max, timestamp max", HttpMethod.Post, "relay/v1/builder/bids", () => BidWith(h => h with { Slot = ulong.MaxValue, TimestampMs = ulong.MaxValue }), null, 400, "out_of_range"),
            ("bid slot over", HttpMethod.Post, "relay/v1/builder/bids", () => Replace(Valid(), "slot", over), null, 400, "malformed"),
            ("bid number max", HttpMethod.Post, "relay/v1/builder/bids", () => BidWith(h => h with { Number = ulong.MaxValue }), null, 409, "stale_parent"),
            ("bid timestamp max", HttpMethod.Post, "relay/v1/builder/bids", () => BidWith(h => h with { TimestampMs = ulong.MaxValue }), null, 400, "wrong_timestamp"),
            ("bid gas max", HttpMethod.Post, "relay/v1/builder/bids", () => BidWith(h => h with { GasLimit = ulong.MaxValue, GasUsed = ulong.MaxValue }), null, 400, "gas_limit_exceeded"),
            ("bid value max uint256", HttpMethod.Post, "relay/v1/builder/bids", () => BidWith(h => h with { Value = MaxU256 }), null, 402, "insufficient_collateral"),
            ("bid value over uint256", HttpMethod.Post, "relay/v1/builder/bids", () => Replace(Valid(), "value", "1" + MaxU256), null, 400, "malformed"),
            ("bid chain id max", HttpMethod.Post, "relay/v1/builder/bids", () => BidWith(h => h with { L2ChainId = MaxU256 }), null, 400, "wrong_chain_id"),
            ("proposal slot max", HttpMethod.Post, "relay/v1/proposer/proposals", () => ProposalBody(ulong.MaxValue, Keccak.Hash("x"u8), proposer), null, 400, "out_of_range"),
            ("proposal slot over", HttpMethod.Post, "relay/v1/proposer/proposals", () => Replace(ProposalBody(1, Keccak.Hash("x"u8), proposer), "slot", over), null, 400, "malformed"),
            ("head slot max", HttpMethod.Post, "relay/v1/proposer/heads", () => AttackHelpers.Announcement(Market, ulong.MaxValue, Hash32.Zero, 1, timestampMs: ulong.MaxValue), null, 400, "out_of_range"),
            ("head slot far, in range", HttpMethod.Post, "relay/v1/proposer/heads", () => AttackHelpers.Announcement(Market, 4_000_000_000, Hash32.Zero, 1), null, 400, "future_slot"),
            ("head number max", HttpMethod.Post, "relay/v1/proposer/heads", () => AttackHelpers.Announcement(Market, a.Slot - 1, a.ParentHash, ulong.MaxValue), null, 409, "stale_parent"),
        ];
        var failures = new List<string>();
        foreach (var c in cases)
        {
            // Bodies are signed against the open auction just before they are sent; one whose auction closed meanwhile is rebuilt on the next.
            if ((long)a.ClosesAtMs - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() < 250) a = await Market.NextAuctionAsync(Relay.Client, 500);
            var (status, code, text) = await AttackHelpers.SendAsync(http, c.Method, c.Path, c.Body(), headers: c.Headers);
            if (code is "auction_closed" or "too_late" && c.Code != code)
            {
                a = await Market.NextAuctionAsync(Relay.Client, 500);
                (status, code, text) = await AttackHelpers.SendAsync(http, c.Method, c.Path, c.Body(), headers: c.Headers);
            }
            if ((status, code) != (c.Status, c.Code)) failures.Add($"{c.Name}: expected {c.Status} {c.Code}, got {status} {code}: {text}");
            Assert.DoesNotContain("   at ", text);
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.Equal(before, await AttackHelpers.SnapshotAsync(Market, k => !StateKey(k)));
    }
}
