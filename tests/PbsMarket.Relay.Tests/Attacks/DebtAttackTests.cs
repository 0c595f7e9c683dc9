using Nethereum.Util;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Relay.Auctions;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;
using StackExchange.Redis;

namespace PbsMarket.Relay.Tests.Attacks;

/// <summary>
/// Debts across relays, crashes and settlement: relay A (the market's Redis, dev key 9) and relay B (its own Redis
/// server and PostgreSQL database, dev key 8) serve one market. The market's builders have 10 ETH allocated at each;
/// the builder under test is a fresh key with 1 ETH at A only (bids are capped by the proposers' 1 ETH bonds).
/// </summary>
/// <remarks>3 s slots: each test bids at both relays and proposes within one slot on a loaded machine.</remarks>
public sealed class DebtAttackTests(TestServers servers) : MarketTest(servers, slotMs: 3000)
{
    static readonly BigInteger Eth = UnitConversion.Convert.ToWei(1);
    RelayInstance _b = null!;
    ConnectionMultiplexer _redisA = null!;
    DebtLedger _ledgerA = null!;
    InboxClient _inbox = null!;

    public override async ValueTask InitializeAsync()
    {
        await base.InitializeAsync();
        var redisB = await Servers.StartOwnAsync(new RedisServer());
        var pgB = await Market.Postgres.CreateDatabaseAsync("relayb");
        _b = await Market.StartRelayAsync(c =>
        {
            c["Relay:Redis"] = redisB.ConnectionString;
            c["Relay:Postgres"] = pgB;
            c["Relay:SigningKey"] = AnvilNode.DevKeys[8];
        });
        _redisA = await ConnectionMultiplexer.ConnectAsync(Market.Redis.ConnectionString);
        _ledgerA = new DebtLedger(new RedisKeys(Market.Network), _redisA);
        _inbox = new InboxClient(L1Rpc.Connect(Market.Anvil.RpcUrl), Market.Deployment);
    }

    public override async ValueTask DisposeAsync()
    {
        await _redisA.DisposeAsync();
        await base.DisposeAsync();
    }

    /// <summary>An auction open at both relays (same slot) with time left to bid at each.</summary>
    async Task<(OpenAuction A, OpenAuction B)> BothOpenAsync()
    {
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var a = await Market.NextAuctionAsync(Relay.Client, 1500);
            try
            {
                var b = await _b.Client.GetAuctionAsync();
                if (b.Slot == a.Slot && b.ParentHash == a.ParentHash) return (a, b);
            }
            catch (RelayRefusedException e) when (e.Code == "unavailable")
            {
                // B is still reading L1 (it started a moment ago)
            }
            await Market.WaitClosedAsync(a.Slot);
        }
        throw new TimeoutException("relays A and B never had the same auction open");
    }

    /// <summary>A fresh builder key with <paramref name="atA"/> wei allocated at relay A and nothing at B.</summary>
    async Task<ProtocolKey> FreshBuilderAsync(BigInteger atA)
    {
        var hex = "0x" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var key = ProtocolKey.FromHex(hex);
        await Market.Anvil.RpcAsync("anvil_setBalance", [key.Address.ToString(), "0x56bc75e2d63100000"]); // 100 ETH for gas and deposit
        await Deployer.DepositAsync(Market.Anvil.RpcUrl, Market.Deployment, hex, atA, TestMarket.RelaySigner.Address);
        return key;
    }

    async Task<(BigInteger Owed, ulong FinalThrough, ulong FinalBlock)> WaitOwedAsync(Address builder, BigInteger expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var owed = await _ledgerA.OwedAsync(builder);
        while (owed.Owed != expected && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
            owed = await _ledgerA.OwedAsync(builder);
        }
        return owed;
    }

    [Fact]
    public async Task A_slot_won_at_relay_A_but_proposed_through_relay_B_frees_its_winners_collateral_at_A_once_L1_passes_it()
    {
        var x = await FreshBuilderAsync(Eth);
        var z = TestMarket.Builders[1];
        var y = TestMarket.Builders[2];
        var (a, b) = await BothOpenAsync();
        // At A, x wins at the second price 0.5 ETH; at B, y wins alone (at the reserve).
        var xBid = TestMarket.Bid(a, x, 6 * Eth / 10);
        var zBid = TestMarket.Bid(a, z, 5 * Eth / 10);
        await Relay.Client.SubmitAsync(xBid.Header, xBid.Signature, xBid.Payload);
        await Relay.Client.SubmitAsync(zBid.Header, zBid.Signature, zBid.Payload);
        var yBid = TestMarket.Bid(b, y, Eth);
        var yReceipt = await _b.Client.SubmitAsync(yBid.Header, yBid.Signature, yBid.Payload);
        await Market.WaitClosedAsync(a.Slot, Relay);
        await Market.WaitClosedAsync(a.Slot, _b);
        Assert.Equal(5 * Eth / 10, (await WaitOwedAsync(x.Address, 5 * Eth / 10)).Owed);
        var escrowBefore = await _inbox.EscrowBalanceAsync(x.Address, TestMarket.RelaySigner.Address);

        // The proposer signs B's header: B posts it; A hears of it as the proposer client tells every relay.
        var proposer = Market.ProposerOf(a.Slot);
        var (status, answer) = await _b.Client.PostRawAsync("relay/v1/proposer/proposals", await Market.ProposalBodyAsync(_b.Url, a.Slot, yReceipt.HeaderHash, proposer));
        Assert.True(status == 200, answer);
        var (annStatus, annAnswer) = await Relay.Client.PostRawAsync("relay/v1/proposer/heads", await Market.AnnouncementAsync(_b.Url, yBid.Header, yBid.Signature, yBid.Payload));
        Assert.True(annStatus == 200, annAnswer);

        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await _inbox.HeaderOfSlotAsync(a.Slot) == Hash32.Zero && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal(yReceipt.HeaderHash, await _inbox.HeaderOfSlotAsync(a.Slot));

        // L1 passed the slot with another block: x owes nothing, was charged nothing, and may bid all it has at A again.
        var (owed, finalThrough, _) = await WaitOwedAsync(x.Address, 0);
        Assert.Equal(BigInteger.Zero, owed);
        Assert.True(finalThrough >= a.Slot, $"final through {finalThrough}");
        Assert.DoesNotContain(a.Slot, (await _ledgerA.OpenDebtsAsync()).Keys);
        Assert.Equal(escrowBefore, await _inbox.EscrowBalanceAsync(x.Address, TestMarket.RelaySigner.Address));
        var later = await Market.NextAuctionAsync(Relay.Client, 500);
        var all = TestMarket.Bid(later, x, escrowBefore);
        var receipt = await Relay.Client.SubmitAsync(all.Header, all.Signature, all.Payload);
        Assert.False(receipt.HeaderHash.IsZero);
    }

    [Fact]
    public async Task A_debt_lost_to_a_crash_between_the_result_and_its_booking_is_booked_before_the_next_slot_takes_a_bid()
    {
        var x = await FreshBuilderAsync(Eth);
        var z = TestMarket.Builders[1];
        var a = await Market.NextAuctionAsync(Relay.Client, 1000);
        var xBid = TestMarket.Bid(a, x, 6 * Eth / 10);
        var zBid = TestMarket.Bid(a, z, 5 * Eth / 10);
        await Relay.Client.SubmitAsync(xBid.Header, xBid.Signature, xBid.Payload);
        await Relay.Client.SubmitAsync(zBid.Header, zBid.Signature, zBid.Payload);
        await Market.WaitClosedAsync(a.Slot, Relay);
        Assert.Equal(5 * Eth / 10, (await WaitOwedAsync(x.Address, 5 * Eth / 10)).Owed);

        // What an instance that stored the result and died before booking leaves behind: the result, no debt.
        var keys = new RedisKeys(Market.Network);
        var db = _redisA.GetDatabase();
        await db.HashDeleteAsync(keys.Debts, a.Slot.ToString());
        await db.SortedSetRemoveAsync(keys.DebtSlots, a.Slot.ToString());
        await db.HashDeleteAsync(keys.Owed, x.Address.ToString());
        Assert.Equal(BigInteger.Zero, (await _ledgerA.OwedAsync(x.Address)).Owed);

        // x bids more than what is left in a following slot: the relay books slot a's result first, and refuses.
        var next = await Market.NextAuctionAsync(Relay.Client, 500);
        Assert.InRange(next.Slot, a.Slot + 1, a.Slot + 1 + HeadRules.LateSlots);
        var again = TestMarket.Bid(next, x, 6 * Eth / 10);
        var refused = await Assert.ThrowsAsync<RelayRefusedException>(() => Relay.Client.SubmitAsync(again.Header, again.Signature, again.Payload));
        Assert.Equal("insufficient_collateral", refused.Code);
        Assert.Equal(5 * Eth / 10, (await _ledgerA.OwedAsync(x.Address)).Owed);
        var within = TestMarket.Bid(next, x, 5 * Eth / 10);
        await Relay.Client.SubmitAsync(within.Header, within.Signature, within.Payload);
    }

    [Fact]
    public async Task Collateral_allocated_at_relay_A_backs_no_bid_at_relay_B()
    {
        var w = await FreshBuilderAsync(Eth);
        var (a, b) = await BothOpenAsync();

        var atB = TestMarket.Bid(b, w, Eth);
        var refused = await Assert.ThrowsAsync<RelayRefusedException>(() => _b.Client.SubmitAsync(atB.Header, atB.Signature, atB.Payload));
        Assert.Equal("collateral_required", refused.Code);
        var above = TestMarket.Bid(a, w, Eth + 1);
        Assert.Equal("insufficient_collateral", (await Assert.ThrowsAsync<RelayRefusedException>(() => Relay.Client.SubmitAsync(above.Header, above.Signature, above.Payload))).Code);
        var atA = TestMarket.Bid(a, w, Eth);
        await Relay.Client.SubmitAsync(atA.Header, atA.Signature, atA.Payload);
    }
}
