using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;
using StackExchange.Redis;

namespace PbsMarket.Relay.Tests.Attacks;

/// <summary>Heads nobody may steer: announcements outside the head rules are refused and change nothing; the head follows L1.</summary>
public sealed class HeadAttackTests(TestServers servers) : MarketTest(servers)
{
    [Fact]
    public async Task Far_future_past_and_out_of_order_head_announcements_are_refused_and_change_nothing()
    {
        using var http = AttackHelpers.ClientFrom(Relay.Url, "127.0.0.51");
        var a = await Market.NextAuctionAsync(Relay.Client, 600);
        var head = await AttackHelpers.HeadAsync(http);
        var before = await AttackHelpers.SnapshotAsync(Market, k => !EdgeAttackTests.StateKey(k));

        // The attack: a proposer announces its own empty block 14 slots ahead, on the current head.
        var current = Market.Clock.CurrentSlot;
        foreach (var ahead in new ulong[] { 14, 3, 2 })
        {
            var (status, code, text) = await AttackHelpers.SendAsync(http, HttpMethod.Post, "relay/v1/proposer/heads",
                AttackHelpers.Announcement(Market, current + ahead, head.Hash, head.Number + 1));
            Assert.True((status, code) == (400, "future_slot"), $"+{ahead}: {status} {code} {text}");
        }
        // A slot whose auction is still open cannot have a proposal yet.
        var (openStatus, openCode, openText) = await AttackHelpers.SendAsync(http, HttpMethod.Post, "relay/v1/proposer/heads",
            AttackHelpers.Announcement(Market, a.Slot, head.Hash, head.Number + 1));
        Assert.True((openStatus, openCode) == (425, "too_early") || (openStatus, openCode) == (400, "future_slot"), $"open slot: {openStatus} {openCode} {openText}");
        // Past: a slot whose in-time window (HeadRules.LateSlots) has passed.
        var (pastStatus, pastCode, pastText) = await AttackHelpers.SendAsync(http, HttpMethod.Post, "relay/v1/proposer/heads",
            AttackHelpers.Announcement(Market, current - 6, head.Hash, head.Number + 1));
        Assert.True((pastStatus, pastCode) == (409, "too_late"), $"past: {pastStatus} {pastCode} {pastText}");
        Assert.Equal(head, await AttackHelpers.HeadAsync(http));
        Assert.Equal(before, await AttackHelpers.SnapshotAsync(Market, k => !EdgeAttackTests.StateKey(k)));

        // A valid announcement (the current slot, closed, on the head) is adopted; then an older slot comes in: refused.
        var s = a.Slot - 1;
        var (okStatus, _, okText) = await AttackHelpers.SendAsync(http, HttpMethod.Post, "relay/v1/proposer/heads", AttackHelpers.Announcement(Market, s, head.Hash, head.Number + 1));
        Assert.True(okStatus == 200 && okText.Contains("\"adopted\":true"), okText);
        var adopted = await AttackHelpers.HeadAsync(http);
        Assert.Equal((head.Number + 1, s), (adopted.Number, adopted.Slot));
        var afterValid = await AttackHelpers.SnapshotAsync(Market, k => !EdgeAttackTests.StateKey(k));
        var (oooStatus, oooCode, oooText) = await AttackHelpers.SendAsync(http, HttpMethod.Post, "relay/v1/proposer/heads",
            AttackHelpers.Announcement(Market, s - 1, adopted.Hash, adopted.Number + 1));
        Assert.True(oooStatus is 409 && oooCode is "too_late" or "not_after_head", $"out of order: {oooStatus} {oooCode} {oooText}");
        Assert.Equal(adopted, await AttackHelpers.HeadAsync(http));
        Assert.Equal(afterValid, await AttackHelpers.SnapshotAsync(Market, k => !EdgeAttackTests.StateKey(k)));

        // The market goes on: the next auctions build on the adopted head.
        var next = await Market.NextAuctionAsync(Relay.Client, 300);
        Assert.Equal(adopted.Hash, next.ParentHash);
        Assert.Equal(adopted.Number + 1, next.Number);
    }

    [Fact]
    public async Task A_relay_on_a_fresh_Redis_joins_the_chain_on_L1s_head_and_a_Redis_that_lost_its_head_does_not_go_back_to_genesis()
    {
        var inbox = new InboxClient(L1Rpc.Connect(Market.Anvil.RpcUrl), Market.Deployment);
        var client = Relay.Client;
        var a = await Market.NextAuctionAsync(client, 500);
        var bid = TestMarket.Bid(a, TestMarket.Builders[0], 50_000);
        var receipt = await client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
        await Market.WaitClosedAsync(a.Slot);
        var (status, _) = await client.PostRawAsync("relay/v1/proposer/proposals", await ProposalBodyAsync(a.Slot, receipt.HeaderHash, Market.ProposerOf(a.Slot)));
        Assert.Equal(200, status);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await inbox.HeaderOfSlotAsync(a.Slot) == Hash32.Zero && DateTime.UtcNow < deadline) await Task.Delay(200);
        var (l1Head, l1Number) = await inbox.HeadAsync();
        Assert.Equal(receipt.HeaderHash, l1Head);

        // A second relay of the market on an empty key space (a fresh Redis) auctions on L1's head, not on genesis.
        await using var fresh = await Market.StartRelayAsync(s => s["Relay:Network"] = "f" + Guid.NewGuid().ToString("N")[..10]);
        var freshAuction = await Market.NextAuctionAsync(fresh.Client, 100);
        Assert.Equal(l1Head, freshAuction.ParentHash);
        Assert.Equal(l1Number + 1, freshAuction.Number);

        // The first relay's Redis loses its head: the head comes back from L1, not from genesis.
        using (var redis = await ConnectionMultiplexer.ConnectAsync(Market.Redis.ConnectionString))
            await redis.GetDatabase().KeyDeleteAsync(new Auctions.RedisKeys(Market.Network).Head);
        ulong? seen = null;
        for (var i = 0; i < 40 && seen is null; i++)
        {
            var head = await AttackHelpers.HeadAsync(new HttpClient { BaseAddress = new Uri(Relay.Url + "/") });
            if (head.Number > 0) seen = head.Number;
            else await Task.Delay(100);
        }
        Assert.Equal(l1Number, seen);
        var after = await Market.NextAuctionAsync(client, 100);
        Assert.Equal(l1Head, after.ParentHash);
    }
}
