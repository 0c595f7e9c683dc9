using System.Text.Json;
using System.Text.Json.Nodes;
using PbsMarket.Core;

namespace PbsMarket.L2;

/// <summary>A block as the engine holds it.</summary>
public sealed record EngineBlock(ulong Number, Hash32 Hash, ulong Timestamp, Hash32 StateRoot, ulong GasUsed, IReadOnlyList<Hash32> Transactions)
{
    /// <summary>The block's base fee per gas (the chain rules want 0).</summary>
    public System.Numerics.BigInteger BaseFee { get; init; }

    public static EngineBlock FromJson(JsonElement b) => new(
        Quantity.ToUInt64(b.GetProperty("number")), Hash32.Parse(b.GetProperty("hash").GetString()!),
        Quantity.ToUInt64(b.GetProperty("timestamp")), Hash32.Parse(b.GetProperty("stateRoot").GetString()!),
        Quantity.ToUInt64(b.GetProperty("gasUsed")),
        [.. b.GetProperty("transactions").EnumerateArray().Select(t => Hash32.Parse(t.ValueKind == JsonValueKind.String ? t.GetString()! : t.GetProperty("hash").GetString()!))])
    {
        BaseFee = b.TryGetProperty("baseFeePerGas", out var f) && f.ValueKind == JsonValueKind.String ? Quantity.ToBig(f) : 0,
    };
}

/// <summary>A transaction of a payload the engine did not execute, and why.</summary>
public sealed record SkippedTx(int Index, Hash32? TxHash, string Reason);

/// <summary>What executing one block gave: the engine's block, and the payload's transactions left out of it.</summary>
public sealed record ExecutedBlock(EngineBlock Block, IReadOnlyList<SkippedTx> Skipped)
{
    /// <summary>What the block's coinbase (its builder) gained in it: the fees the builder bids a share of.</summary>
    public System.Numerics.BigInteger CoinbaseGain { get; init; }
}

/// <summary>
/// The adapter to the L2 execution engine: an anvil started with <c>--no-mining --order fifo --base-fee 0</c> and the
/// L2 chain id (<see cref="PbsMarket.LocalServers"/> starts it). A block is executed by setting the coinbase and the
/// timestamp, sending the payload's transactions in order, and mining one block; a reorg rolls blocks back.
/// A production engine would take the same inputs through the Engine API (<c>engine_forkchoiceUpdated</c> with payload
/// attributes carrying the transaction list, <c>noTxPool: true</c>, the timestamp and the fee recipient, then
/// <c>engine_getPayload</c> and <c>engine_newPayload</c>, as op-geth and op-reth take them): docs/l2.md.
/// </summary>
public sealed class L2Engine(JsonRpcClient rpc)
{
    public JsonRpcClient Rpc { get; } = rpc;

    public async Task<EngineBlock> BlockAsync(ulong? number = null, CancellationToken ct = default)
    {
        var b = await Rpc.CallAsync("eth_getBlockByNumber", [number is { } n ? Quantity.Of(n) : "latest", false], ct);
        return Block(b, number);
    }

    static EngineBlock Block(JsonElement b, ulong? number)
    {
        if (b.ValueKind == JsonValueKind.Null) throw new InvalidOperationException($"the L2 engine has no block {number?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "latest"}");
        return EngineBlock.FromJson(b);
    }

    public async Task<ulong> ChainIdAsync(CancellationToken ct = default) => Quantity.ToUInt64(await Rpc.CallAsync("eth_chainId", [], ct));

    /// <summary>Back to the genesis: the engine's blocks are a cache of the chain that L1 (and proposals) define.</summary>
    public async Task ResetAsync(CancellationToken ct = default)
    {
        await Rpc.CallAsync("anvil_reset", [], ct);
        await Rpc.CallAsync("anvil_dropAllTransactions", [], ct);
        // anvil_reset sets the base fee to 1 gwei whatever --base-fee said, and a rollback does not restore it: the chain
        // rules say 0, so it is set before every block (ExecuteAsync) and checked on every mined block.
        await Rpc.CallAsync("anvil_setNextBlockBaseFeePerGas", ["0x0"], ct);
    }

    /// <summary>Removes the newest <paramref name="depth"/> blocks.</summary>
    public async Task RollbackAsync(ulong depth, CancellationToken ct = default)
    {
        if (depth == 0) return;
        await Rpc.CallAsync("anvil_rollback", [depth], ct);
        await Rpc.CallAsync("anvil_setNextBlockBaseFeePerGas", ["0x0"], ct);
    }

    /// <summary>
    /// Executes one block on the engine's tip: the transactions in payload order, each only if it can execute there (it
    /// decodes, its nonce is its sender's next, the engine takes it); the others are skipped and the block stands.
    /// Calls that do not depend on each other travel in one JSON-RPC batch (the block's settings, the coinbase's balance
    /// and the senders' nonces before; the block, the balance and the pool's cleanup after): a simulation is a dozen round
    /// trips to the engine instead of two dozen, which is what it costs on a loaded machine. The transactions themselves
    /// are sent one by one, in order (the engine's pool is first in, first out, so the order is the block's).
    /// </summary>
    public async Task<ExecutedBlock> ExecuteAsync(IReadOnlyList<byte[]> rawTxs, ulong timestamp, Address coinbase, CancellationToken ct = default)
    {
        var skipped = new List<SkippedTx>();
        var decoded = new List<(int Index, byte[] Raw, Hash32 Hash, ulong Nonce, Address Sender)>();
        var senders = new List<Address>(); // distinct, in payload order
        for (var i = 0; i < rawTxs.Count; i++)
        {
            var raw = rawTxs[i];
            var tx = PayloadCodec.DecodeTransaction(raw, out var error);
            if (tx is null) { skipped.Add(new(i, null, error!.Message)); continue; }
            Address sender;
            try { sender = PayloadCodec.RecoverSender(raw); }
            catch (FormatException e) { skipped.Add(new(i, tx.TxHash, $"sender: {e.Message}")); continue; }
            decoded.Add((i, raw, tx.TxHash, tx.Nonce, sender));
            if (!senders.Contains(sender)) senders.Add(sender);
        }
        (string, JsonArray)[] setup = [
            ("eth_getBalance", new JsonArray(coinbase.ToString(), "latest")),
            ("anvil_dropAllTransactions", []),
            ("anvil_setCoinbase", new JsonArray(coinbase.ToString())),
            ("evm_setNextBlockTimestamp", new JsonArray(timestamp)),
            ("anvil_setNextBlockBaseFeePerGas", new JsonArray("0x0"))];
        var before = await Rpc.BatchAsync([.. setup, .. senders.Select(a => ("eth_getTransactionCount", new JsonArray(a.ToString(), "latest")))], ct);
        var balanceBefore = Quantity.ToBig(before[0]);
        var nextNonce = senders.Select((a, k) => (a, k)).ToDictionary(x => x.a, x => Quantity.ToUInt64(before[setup.Length + x.k]));
        var sent = new List<(int Index, Hash32 Hash)>();
        foreach (var (index, raw, hash, nonce, sender) in decoded)
        {
            var expected = nextNonce[sender];
            if (nonce != expected)
            {
                skipped.Add(new(index, hash, $"nonce {nonce}, but {sender}'s next nonce is {expected}"));
                continue;
            }
            try
            {
                await Rpc.CallAsync("eth_sendRawTransaction", [Hex.Encode(raw)], ct);
                nextNonce[sender] = expected + 1;
                sent.Add((index, hash));
            }
            catch (JsonRpcException e)
            {
                skipped.Add(new(index, hash, e.RpcMessage));
            }
        }
        await Rpc.CallAsync("evm_mine", [], ct);
        var after = await Rpc.BatchAsync([
            ("eth_getBlockByNumber", new JsonArray("latest", false)),
            ("eth_getBalance", new JsonArray(coinbase.ToString(), "latest")),
            ("anvil_dropAllTransactions", [])], ct);
        var block = Block(after[0], null);
        if (!block.BaseFee.IsZero) throw new InvalidOperationException($"the engine mined block {block.Number} with base fee {block.BaseFee}; the chain rules say 0");
        var included = block.Transactions.ToHashSet();
        foreach (var (index, hash) in sent)
            if (!included.Contains(hash)) skipped.Add(new(index, hash, "the engine did not execute it"));
        skipped.Sort((a, b) => a.Index.CompareTo(b.Index));
        return new ExecutedBlock(block, skipped) { CoinbaseGain = Quantity.ToBig(after[1]) - balanceBefore };
    }
}
