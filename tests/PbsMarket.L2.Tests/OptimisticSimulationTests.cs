using System.Text.Json;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.Relay.Auctions;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace PbsMarket.L2.Tests;

/// <summary>
/// Optimistic simulation (docs/l2.md): a relay that accepts a builder's bid before simulating it, simulates the leading
/// bids during the auction, and never lets a block that fails execution win or set the price; its builder is demoted.
/// A real L1, Redis, PostgreSQL, L2 engine and L2 node.
/// </summary>
/// <remarks>3 s slots: the test checks verdicts while the auction is still open.</remarks>
public sealed class OptimisticSimulationTests(TestServers servers) : IAsyncLifetime
{
    TestMarket _market = null!;
    L2Node _node = null!;
    RelayInstance _relay = null!;
    JsonRpcClient _relayPort = null!;
    ConnectionMultiplexer _redis = null!;

    public async ValueTask InitializeAsync()
    {
        _market = await TestMarket.StartAsync(servers, slotMs: 3000);
        var engine = await servers.StartOwnAsync(new L2EngineNode());
        var options = new L2NodeOptions { L1Rpc = _market.Anvil.RpcUrl, EngineRpc = engine.RpcUrl, PollMs = 50 };
        _node = L2Node.Build(options, _market.Deployment);
        await _node.StartAsync();
        _relay = await StartOptimisticRelayAsync();
        options.Relays = [_relay.Url];
        _relayPort = new JsonRpcClient(_node.RelayRpcUrl, TimeSpan.FromSeconds(10));
        _redis = await ConnectionMultiplexer.ConnectAsync(_market.RedisConnection);
    }

    Task<RelayInstance> StartOptimisticRelayAsync(int? cutoffMs = null) => _market.StartRelayAsync(c =>
    {
        c["Relay:L2Rpc"] = _node.RelayRpcUrl;
        c["Relay:Simulation"] = "optimistic";
        c["Relay:DemotionSlots"] = "1000";
        c["Relay:OptimisticMaxGasUsed"] = "30000"; // heavier blocks are simulated before their receipt
        if (cutoffMs is { } ms) c["Relay:OptimisticCutoffMs"] = ms.ToString(System.Globalization.CultureInfo.InvariantCulture);
    });

    public async ValueTask DisposeAsync()
    {
        _relayPort.Dispose();
        await _redis.DisposeAsync();
        await _market.DisposeAsync();
        if (!_nodeStopped) await _node.DisposeAsync();
    }

    bool _nodeStopped;

    static readonly string[] Keys = PbsMarket.LocalServers.AnvilNode.DevKeys;
    static readonly string Recipient = EngineTests.AddressOf(Keys[19]);

    /// <summary>An open auction with time left whose parent the L2 node has executed (an optimistic relay does not say).</summary>
    async Task<OpenAuction> AuctionAtTipAsync()
    {
        var simulator = new BlockSimulator(_relayPort);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var a = await _market.NextAuctionAsync(_relay.Client, 1800);
            var probe = TestMarket.Bid(a, TestMarket.Builders[0], 1);
            var verdict = await simulator.SimulateAsync(probe.Header, probe.Payload, CancellationToken.None);
            if (verdict.Error?.Code != "unavailable") return a;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the L2 node did not reach the auction's parent: {verdict.Error.Message}");
            await Task.Delay(100);
        }
    }

    async Task<Hash32> SubmitAsync(OpenAuction a, ProtocolKey builder, BigInteger value, byte[] payload, ulong gas)
    {
        var bid = TestMarket.Bid(a, builder, value, payload, gas);
        return (await _relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload)).HeaderHash;
    }

    async Task WaitVerdictWhileOpenAsync(OpenAuction a, Hash32 headerHash)
    {
        var key = new RedisKeys(_market.Network).Verdicts(a.Slot);
        while (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() < (long)a.ClosesAtMs - 100)
        {
            if (await _redis.GetDatabase().HashExistsAsync(key, headerHash.ToString())) return;
            await Task.Delay(20);
        }
        Assert.Fail($"no verdict for {headerHash} was stored during slot {a.Slot}'s auction");
    }

    async Task<JsonElement> HeaderServedAsync(ulong slot)
    {
        var proposer = _market.ProposerOf(slot);
        using var http = new HttpClient();
        var request = new HttpRequestMessage(HttpMethod.Get, $"{_relay.Url}/relay/v1/proposer/header/{slot}");
        request.Headers.Add("X-Pbs-Signature", proposer.Sign(Eip712.Digest(_market.Domain, new HeaderRequest(slot, proposer.Address))).ToString());
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    static async Task<JsonElement> GetAsync(string url)
    {
        using var http = new HttpClient();
        return JsonDocument.Parse(await http.GetStringAsync(url)).RootElement.Clone();
    }

    [Fact]
    public async Task Optimistic_bids_that_fail_execution_neither_win_nor_set_the_price_and_demote_their_builders()
    {
        var b = TestMarket.Builders;
        var transfer = PayloadCodec.Encode([EngineTests.Transfer(Keys[10], 0, Recipient, 1)]);

        // Slot 1: a valid winner, an invalid bid that would be the runner-up (and raise the second price), a valid third.
        var a = await AuctionAtTipAsync();
        var winner = await SubmitAsync(a, b[0], 9_000, transfer, 21_000);
        var badGas = PayloadCodec.Encode([EngineTests.Transfer(Keys[11], 0, Recipient, 1, gas: 50_000)]);
        var invalidRunnerUp = await SubmitAsync(a, b[1], 8_000, badGas, 30_000); // accepted: not simulated before its receipt
        // A block heavier than Relay:OptimisticMaxGasUsed is simulated before its receipt, whoever sends it.
        var heavy = await Assert.ThrowsAsync<RelayRefusedException>(() =>
        {
            var bid = TestMarket.Bid(a, b[2], 4_000, PayloadCodec.Encode([EngineTests.Transfer(Keys[12], 0, Recipient, 1, gas: 50_000)]), 40_000);
            return _relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
        });
        Assert.Equal("wrong_gas_used", heavy.Code);
        var third = await SubmitAsync(a, b[2], 3_000, PayloadCodec.Empty, 0);
        // The leading bids are simulated during the auction; the failure is sealed until the close.
        await WaitVerdictWhileOpenAsync(a, winner);
        await WaitVerdictWhileOpenAsync(a, invalidRunnerUp);
        Assert.Empty((await GetAsync($"{_relay.Url}/relay/v1/data/demotions")).GetProperty("demotions").EnumerateArray());

        await _market.WaitClosedAsync(a.Slot, _relay);
        var served = await HeaderServedAsync(a.Slot);
        Assert.Equal(winner.ToString(), served.GetProperty("header_hash").GetString());
        var slot = await GetAsync($"{_relay.Url}/relay/v1/data/slots/{a.Slot}");
        Assert.Equal("3000", slot.GetProperty("price").GetString()); // the third bid's value, not the invalid 8,000
        Assert.Equal(b[2].Address.ToString(), slot.GetProperty("runner_up").GetProperty("builder").GetString(), ignoreCase: true);
        Assert.Equal("3", slot.GetProperty("bid_count").GetString()); // every accepted bid stays in the bids root
        string SimulationOf(JsonElement s, Hash32 h) => s.GetProperty("bids").EnumerateArray()
            .Single(x => x.GetProperty("header_hash").GetString() == h.ToString()).TryGetProperty("simulation", out var v) ? v.GetString()! : "(none)";
        Assert.Equal("valid", SimulationOf(slot, winner));
        Assert.Equal("wrong_gas_used", SimulationOf(slot, invalidRunnerUp));
        Assert.Equal("valid", SimulationOf(slot, third));

        // The failure is on record with its code, and the demoted builder's next bids are simulated before their receipt.
        var demotions = await GetAsync($"{_relay.Url}/relay/v1/data/demotions");
        Assert.Equal("optimistic", demotions.GetProperty("mode").GetString());
        var record = Assert.Single(demotions.GetProperty("demotions").EnumerateArray());
        Assert.Equal(b[1].Address.ToString(), record.GetProperty("builder").GetString(), ignoreCase: true);
        Assert.Equal("wrong_gas_used", record.GetProperty("code").GetString());
        Assert.Equal(invalidRunnerUp.ToString(), record.GetProperty("header_hash").GetString());
        Assert.True(record.GetProperty("active").GetBoolean());

        // Slot 2: an invalid bid worth far more than the rest, from a builder in good standing: accepted, never served.
        var a2 = await AuctionAtTipAsync();
        var invalidTop = await SubmitAsync(a2, b[2], 1_000_000, PayloadCodec.Encode([EngineTests.Transfer(Keys[10], 5, Recipient, 1)]), 21_000);
        var winner2 = await SubmitAsync(a2, b[0], 5_000, PayloadCodec.Empty, 0);
        var refused = await Assert.ThrowsAsync<RelayRefusedException>(() =>
        {
            var bid = TestMarket.Bid(a2, b[1], 4_000, badGas, 30_000);
            return _relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
        });
        Assert.Equal("wrong_gas_used", refused.Code); // demoted: refused at once, like every bid of a pessimistic relay
        var runnerUp2 = await SubmitAsync(a2, b[1], 2_000, PayloadCodec.Empty, 0);

        await _market.WaitClosedAsync(a2.Slot, _relay);
        Assert.Equal(winner2.ToString(), (await HeaderServedAsync(a2.Slot)).GetProperty("header_hash").GetString());
        var slot2 = await GetAsync($"{_relay.Url}/relay/v1/data/slots/{a2.Slot}");
        Assert.Equal("2000", slot2.GetProperty("price").GetString());
        Assert.Equal("invalid_nonce", SimulationOf(slot2, invalidTop));
        Assert.Equal("valid", SimulationOf(slot2, runnerUp2)); // simulated before its receipt
        var codes = (await GetAsync($"{_relay.Url}/relay/v1/data/demotions")).GetProperty("demotions").EnumerateArray()
            .ToDictionary(d => d.GetProperty("builder").GetString()!.ToLowerInvariant(), d => d.GetProperty("code").GetString());
        Assert.Equal("invalid_nonce", codes[b[2].Address.ToString().ToLowerInvariant()]);
        Assert.Equal("wrong_gas_used", codes[b[1].Address.ToString().ToLowerInvariant()]);
        Assert.False(codes.ContainsKey(b[0].Address.ToString().ToLowerInvariant()));
    }

    [Fact]
    public async Task A_better_bid_that_cannot_be_simulated_leaves_the_slot_without_a_winner_rather_than_let_a_lower_one_win()
    {
        var b = TestMarket.Builders;
        // Builder 1 gets itself demoted, so that its next bid is simulated (and stored valid) before its receipt.
        var a = await AuctionAtTipAsync();
        var invalid = await SubmitAsync(a, b[1], 8_000, PayloadCodec.Encode([EngineTests.Transfer(Keys[11], 9, Recipient, 1)]), 21_000);
        await WaitVerdictWhileOpenAsync(a, invalid);
        await _market.WaitClosedAsync(a.Slot, _relay);

        var late = await StartOptimisticRelayAsync(cutoffMs: 10_000); // every bid it takes is "late"
        var a2 = await AuctionAtTipAsync();
        var checkedLow = await SubmitAsync(a2, b[1], 2_000, PayloadCodec.Empty, 0); // demoted: simulated before its receipt
        // The L2 node goes away (down, or kept busy by an attacker); a better optimistic bid is still taken.
        await _node.DisposeAsync();
        _nodeStopped = true;
        var unchecked_ = await SubmitAsync(a2, b[0], 9_000, PayloadCodec.Empty, 0);
        // A late bid would be simulated before its receipt, but the node cannot answer: it is taken optimistically, not
        // refused (else whoever can slow the node could keep better last-moment bids out and let a lower one win).
        var lateBid = TestMarket.Bid(a2, b[2], 8_500, PayloadCodec.Empty, 0);
        var lateReceipt = await late.Client.SubmitAsync(lateBid.Header, lateBid.Signature, lateBid.Payload);
        await _market.WaitClosedAsync(a2.Slot, _relay);

        var slot = await GetAsync($"{_relay.Url}/relay/v1/data/slots/{a2.Slot}");
        Assert.Equal(JsonValueKind.Null, slot.GetProperty("winner").ValueKind); // not the checked 2,000 bid
        var bids = slot.GetProperty("bids").EnumerateArray().ToDictionary(x => x.GetProperty("header_hash").GetString()!,
            x => x.TryGetProperty("simulation", out var v) ? v.GetString() : null);
        Assert.True(bids.ContainsKey(lateReceipt.HeaderHash.ToString())); // in the bids root like every accepted bid
        Assert.Equal("unavailable", bids[unchecked_.ToString()]);
        Assert.Equal("valid", bids[checkedLow.ToString()]);
        var proposer = _market.ProposerOf(a2.Slot);
        using var http = new HttpClient();
        var request = new HttpRequestMessage(HttpMethod.Get, $"{_relay.Url}/relay/v1/proposer/header/{a2.Slot}");
        request.Headers.Add("X-Pbs-Signature", proposer.Sign(Eip712.Digest(_market.Domain, new HeaderRequest(a2.Slot, proposer.Address))).ToString());
        using var response = await http.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.NoContent, response.StatusCode); // no header to sign: the proposer builds its own or misses
        // An unavailable node is the relay's fault, not the builder's: builder 0 is not demoted.
        var demoted = (await GetAsync($"{_relay.Url}/relay/v1/data/demotions")).GetProperty("demotions").EnumerateArray()
            .Select(d => d.GetProperty("builder").GetString()!.ToLowerInvariant()).ToList();
        Assert.DoesNotContain(b[0].Address.ToString().ToLowerInvariant(), demoted);
        Assert.Contains(b[1].Address.ToString().ToLowerInvariant(), demoted);
    }

    [Fact]
    public async Task Instances_sharing_the_node_simulate_a_block_once_and_a_bid_late_in_the_auction_is_simulated_before_its_receipt()
    {
        var b = TestMarket.Builders;
        var twin = await StartOptimisticRelayAsync();
        // OptimisticCutoffMs longer than the whole auction: every bid this instance takes arrives "late".
        var late = await StartOptimisticRelayAsync(cutoffMs: 10_000);
        var a = await AuctionAtTipAsync();

        // Every instance closes every slot, and all share the L2 node: a block the close needs is simulated once, by the
        // instance that claims it, and read by the others (the prefetch is stopped, so that only the closes simulate it).
        var instances = new[] { _relay, twin };
        foreach (var r in instances) await r.App.Services.GetRequiredService<SimulationPrefetcher>().StopAsync(CancellationToken.None);
        var bid = TestMarket.Bid(a, b[0], 7_000, PayloadCodec.Encode([EngineTests.Transfer(Keys[10], 0, Recipient, 1)]), 21_000);
        var hash = (await _relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload)).HeaderHash;
        var before = _node.Derivation.SimulationsRun;
        using (var budget = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            var closes = await Task.WhenAll(instances.Select(r => r.App.Services.GetRequiredService<SimulationVerdicts>()
                .EnsureAsync(a.Slot, hash, bid.Header, null, final: true, budget.Token)));
            Assert.All(closes, v => Assert.Equal("valid", v!.Code));
        }
        Assert.Equal(1, _node.Derivation.SimulationsRun - before);
        await _market.WaitClosedAsync(a.Slot, _relay);
        await _market.WaitClosedAsync(a.Slot, twin);
        Assert.Equal(hash.ToString(), (await HeaderServedAsync(a.Slot)).GetProperty("header_hash").GetString());
        Assert.Equal(1, _node.Derivation.SimulationsRun - before); // the closes found the stored verdict

        // Near the close a bid is checked before its receipt even from a builder in good standing, so the close never has
        // to simulate a last-moment bid while the proposer waits: an invalid one is refused with its code, nobody demoted.
        var a2 = await AuctionAtTipAsync();
        var refused = await Assert.ThrowsAsync<RelayRefusedException>(() =>
        {
            var bad = TestMarket.Bid(a2, b[1], 8_000, PayloadCodec.Encode([EngineTests.Transfer(Keys[11], 0, Recipient, 1, gas: 50_000)]), 30_000);
            return late.Client.SubmitAsync(bad.Header, bad.Signature, bad.Payload);
        });
        Assert.Equal("wrong_gas_used", refused.Code);
        var checkedFirst = TestMarket.Bid(a2, b[2], 5_000, PayloadCodec.Empty, 0);
        var valid = (await late.Client.SubmitAsync(checkedFirst.Header, checkedFirst.Signature, checkedFirst.Payload)).HeaderHash;
        await _market.WaitClosedAsync(a2.Slot, late);
        Assert.Empty((await GetAsync($"{late.Url}/relay/v1/data/demotions")).GetProperty("demotions").EnumerateArray());
        var slot = await GetAsync($"{late.Url}/relay/v1/data/slots/{a2.Slot}");
        var lateBid = slot.GetProperty("bids").EnumerateArray().Single(x => x.GetProperty("header_hash").GetString() == valid.ToString());
        Assert.Equal("valid", lateBid.GetProperty("simulation").GetString()); // simulated before its receipt
    }
}
