using Nethereum.Signer;
using PbsMarket.Core;
using PbsMarket.L2;
using PbsMarket.Testing;

namespace PbsMarket.L2.Tests;

/// <summary>The engine adapter and the derivation's chain rules, on a real L2 engine (anvil).</summary>
public sealed class EngineTests(TestServers servers) : IAsyncLifetime
{
    L2EngineNode _node = null!;
    JsonRpcClient _rpc = null!;

    public async ValueTask InitializeAsync()
    {
        _node = await servers.StartOwnAsync(new L2EngineNode());
        _rpc = new JsonRpcClient(_node.RpcUrl, TimeSpan.FromSeconds(10));
    }

    public ValueTask DisposeAsync()
    {
        _rpc.Dispose();
        return ValueTask.CompletedTask;
    }

    internal static readonly string[] Keys = PbsMarket.LocalServers.AnvilNode.DevKeys;

    /// <summary>An EIP-1559 transfer signed with Nethereum, as any wallet library would sign it.</summary>
    internal static byte[] Transfer(string key, ulong nonce, string to, BigInteger value, BigInteger? tip = null, ulong gas = 21_000, long chainId = 901)
    {
        var t = new Nethereum.Model.Transaction1559(chainId, nonce, tip ?? 1_000_000_000, (tip ?? 1_000_000_000) * 2, gas, to, value, "", null);
        new Transaction1559Signer().SignTransaction(new EthECKey(key), t);
        return t.GetRLPEncoded();
    }

    internal static string AddressOf(string key) => new EthECKey(key).GetPublicAddress().ToLowerInvariant();

    static Header HeaderAt(ulong number, Hash32 parent, ulong timestampMs, Address builder, byte[] payload) =>
        new(901, number, number, parent, timestampMs, 30_000_000, 0, Keccak.Hash(payload), builder, builder, 0);

    [Fact]
    public async Task A_block_executes_in_payload_order_and_an_invalid_transaction_is_skipped_while_the_block_stands()
    {
        var d = new Derivation(new L2Engine(_rpc), 901, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        await d.StartAsync(CancellationToken.None);
        var builder = Address.Parse(AddressOf(Keys[3]));
        var to = AddressOf(Keys[2]);
        var good0 = Transfer(Keys[0], 0, to, 1000);
        var gap = Transfer(Keys[0], 5, to, 1000); // nonce 5 when 1 is next: skipped
        var good1 = Transfer(Keys[0], 1, to, 1000);
        var unfunded = Transfer("0x" + new string('1', 64), 0, to, 1000); // a key nobody funded
        var payload = PayloadCodec.Encode([good0, gap, good1, unfunded]);
        var header = HeaderAt(1, Hash32.Zero, 1_700_000_000_500, builder, payload);

        var what = await d.ApplyL1Async(new PostedBlock(header, Eip712.HashStruct(header), payload, 0, ""), CancellationToken.None);

        var block = d.Tip;
        Assert.Equal(1ul, block.Number);
        Assert.Equal([Keccak.Hash(good0), Keccak.Hash(good1)], block.Engine.Transactions);
        Assert.Equal([1, 3], block.Skipped.Select(s => s.Index));
        Assert.Contains("nonce 5", block.Skipped[0].Reason, StringComparison.Ordinal);
        Assert.Contains("nsufficient funds", block.Skipped[1].Reason, StringComparison.Ordinal);
        Assert.Equal(42_000ul, block.Engine.GasUsed);
        Assert.Equal(1_700_000_000ul, block.Engine.Timestamp);
        Assert.Contains("2 skipped", what, StringComparison.Ordinal);
        // No base fee (anvil_reset would set 1 gwei): the sender paid exactly the values and the tips.
        Assert.True(block.Engine.BaseFee.IsZero);
        var sender = Quantity.ToBig(await _rpc.CallAsync("eth_getBalance", [AddressOf(Keys[0]), "latest"]));
        Assert.Equal(BigInteger.Parse("10000000000000000000000", System.Globalization.CultureInfo.InvariantCulture) - 2000 - 42_000 * 1_000_000_000L, sender);
        // The builder is the coinbase: it earned the tips (1 gwei a gas, no base fee).
        var balance = Quantity.ToBig(await _rpc.CallAsync("eth_getBalance", [builder.ToString(), "latest"]));
        Assert.Equal(BigInteger.Parse("10000000000000000000000", System.Globalization.CultureInfo.InvariantCulture) + 42_000 * 1_000_000_000L, balance);
    }

    [Fact]
    public async Task Evm_timestamps_are_whole_seconds_and_strictly_increasing_for_slots_shorter_than_a_second()
    {
        Assert.Equal(1_000ul, L2Rules.EvmTimestamp(999, 1_000_250));
        Assert.Equal(1_001ul, L2Rules.EvmTimestamp(1_000, 1_000_500)); // same second as the parent: one later
        Assert.Equal(1_002ul, L2Rules.EvmTimestamp(1_001, 1_000_750)); // ahead of the wall clock, never backwards
        var d = new Derivation(new L2Engine(_rpc), 901, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        await d.StartAsync(CancellationToken.None);
        var parent = Hash32.Zero;
        var stamps = new List<ulong>();
        for (ulong n = 1; n <= 4; n++)
        {
            var h = HeaderAt(n, parent, 1_700_000_000_000 + n * 250, Address.Parse(AddressOf(Keys[3])), PayloadCodec.Empty);
            parent = Eip712.HashStruct(h);
            await d.ApplyL1Async(new PostedBlock(h, parent, PayloadCodec.Empty, 0, ""), CancellationToken.None);
            stamps.Add(d.Tip.Engine.Timestamp);
        }
        Assert.Equal([1_700_000_000ul, 1_700_000_001, 1_700_000_002, 1_700_000_003], stamps);
    }

    [Fact]
    public async Task L1_wins_over_a_proposed_block()
    {
        var log = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        var d = new Derivation(new L2Engine(_rpc), 901, log);
        await d.StartAsync(CancellationToken.None);
        var builder = Address.Parse(AddressOf(Keys[3]));
        var alice = AddressOf(Keys[4]);
        var bob = AddressOf(Keys[5]);
        // Ahead of L1, a proposal pays Alice; L1 then holds another block 1 that pays Bob.
        var proposedPayload = PayloadCodec.Encode([Transfer(Keys[0], 0, alice, 777)]);
        var proposed = HeaderAt(1, Hash32.Zero, 1_700_000_001_000, builder, proposedPayload);
        Assert.Null(await d.ApplyProposedAsync(proposed, Eip712.HashStruct(proposed), proposedPayload, CancellationToken.None));
        Assert.False(d.Tip.OnL1);
        var l1Payload = PayloadCodec.Encode([Transfer(Keys[0], 0, bob, 555)]);
        var l1Header = HeaderAt(1, Hash32.Zero, 1_700_000_001_000, builder, l1Payload) with { Value = 1 };
        var l1Block = new PostedBlock(l1Header, Eip712.HashStruct(l1Header), l1Payload, 0, "");
        await d.ApplyL1Async(l1Block, CancellationToken.None);
        Assert.True(d.Tip.OnL1);
        Assert.Equal(l1Block.HeaderHash, d.Tip.HeaderHash);
        Assert.Null(d.ByHeaderHash(Eip712.HashStruct(proposed)));
        Assert.Equal(BigInteger.Parse("10000000000000000000000", System.Globalization.CultureInfo.InvariantCulture), await BalanceAsync(alice));
        Assert.Equal(BigInteger.Parse("10000000000000000000555", System.Globalization.CultureInfo.InvariantCulture), await BalanceAsync(bob));
        Assert.Equal(1ul, Quantity.ToUInt64(await _rpc.CallAsync("eth_getTransactionCount", [AddressOf(Keys[0]), "latest"])));
    }

    [Fact]
    public async Task A_restart_rebuilds_the_same_state_from_L1_alone()
    {
        var log = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        var builder = Address.Parse(AddressOf(Keys[3]));
        var posted = new List<PostedBlock>();
        var parent = Hash32.Zero;
        for (ulong n = 1; n <= 3; n++)
        {
            var payload = PayloadCodec.Encode([Transfer(Keys[0], n - 1, AddressOf(Keys[4]), 1000 + n), Transfer(Keys[1], n - 1, AddressOf(Keys[5]), n)]);
            var h = HeaderAt(n, parent, 1_700_000_000_000 + n * 2000, builder, payload);
            parent = Eip712.HashStruct(h);
            posted.Add(new PostedBlock(h, parent, payload, 0, ""));
        }
        var d = new Derivation(new L2Engine(_rpc), 901, log);
        await d.StartAsync(CancellationToken.None);
        foreach (var p in posted) await d.ApplyL1Async(p, CancellationToken.None);
        var before = d.Tip.Engine;
        var balance = await BalanceAsync(AddressOf(Keys[4]));

        // A restart: the engine is reset and the chain derived again from what L1 holds.
        var again = new Derivation(new L2Engine(_rpc), 901, log);
        await again.StartAsync(CancellationToken.None);
        Assert.Equal(0ul, again.Tip.Number);
        Assert.Equal(BigInteger.Parse("10000000000000000000000", System.Globalization.CultureInfo.InvariantCulture), await BalanceAsync(AddressOf(Keys[4])));
        foreach (var p in posted) await again.ApplyL1Async(p, CancellationToken.None);
        Assert.Equal(before.StateRoot, again.Tip.Engine.StateRoot);
        Assert.Equal(before.Timestamp, again.Tip.Engine.Timestamp);
        Assert.Equal(before.Transactions, again.Tip.Engine.Transactions);
        Assert.Equal(balance, await BalanceAsync(AddressOf(Keys[4])));
    }

    [Fact]
    public async Task A_simulation_runs_on_the_tip_like_the_derivation_and_leaves_nothing_behind()
    {
        var d = new Derivation(new L2Engine(_rpc), 901, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        await d.StartAsync(CancellationToken.None);
        var builder = Address.Parse(AddressOf(Keys[3]));
        var payload = PayloadCodec.Encode([Transfer(Keys[0], 0, AddressOf(Keys[2]), 1, tip: 3_000_000_000)]);
        var sim = await d.SimulateAsync(Hash32.Zero, 1_700_000_000_000, builder, payload, CancellationToken.None);
        Assert.NotNull(sim);
        Assert.Empty(sim.Skipped);
        Assert.Equal(21_000ul, sim.GasUsed);
        Assert.Equal(new BigInteger(21_000L * 3_000_000_000), sim.CoinbaseGain);
        Assert.Equal(0ul, Quantity.ToUInt64(await _rpc.CallAsync("eth_blockNumber", [])));
        Assert.Equal(0ul, Quantity.ToUInt64(await _rpc.CallAsync("eth_getTransactionCount", [AddressOf(Keys[0]), "latest"])));
        // Not on the tip: no answer.
        Assert.Null(await d.SimulateAsync(Hash32.Parse("0x" + new string('a', 64)), 1_700_000_000_000, builder, payload, CancellationToken.None));
    }

    [Fact]
    public async Task A_cancelled_simulation_leaves_no_block_and_a_block_left_on_the_engine_is_rolled_back()
    {
        var d = new Derivation(new L2Engine(_rpc), 901, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        await d.StartAsync(CancellationToken.None);
        var builder = Address.Parse(AddressOf(Keys[3]));
        var payload = PayloadCodec.Encode([.. Enumerable.Range(0, 20).Select(i => Transfer(Keys[i % 10 + 10], (ulong)(i / 10), AddressOf(Keys[2]), 1))]);
        // A caller that gives up at any point (here after 0-20 ms): however far the simulation got, it ends rolled back.
        for (var ms = 0; ms <= 20; ms += 5)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(ms));
            try { await d.SimulateAsync(Hash32.Zero, 1_700_000_000_000, builder, payload, cts.Token); }
            catch (OperationCanceledException) { }
            Assert.Equal(0ul, Quantity.ToUInt64(await _rpc.CallAsync("eth_blockNumber", [])));
        }
        // Something mined a block the derivation did not make: the next use of the engine rolls it back first.
        await _rpc.CallAsync("evm_mine", []);
        var h = HeaderAt(1, Hash32.Zero, 1_700_000_001_000, builder, payload);
        await d.ApplyL1Async(new PostedBlock(h, Eip712.HashStruct(h), payload, 0, ""), CancellationToken.None);
        Assert.Equal(1ul, d.Tip.Number);
        Assert.Equal(20, d.Tip.Engine.Transactions.Count);
        Assert.Equal(1ul, Quantity.ToUInt64(await _rpc.CallAsync("eth_blockNumber", [])));
    }

    async Task<BigInteger> BalanceAsync(string who) => Quantity.ToBig(await _rpc.CallAsync("eth_getBalance", [who, "latest"]));
}
