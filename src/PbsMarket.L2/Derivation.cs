using Microsoft.Extensions.Logging;
using PbsMarket.Core;

namespace PbsMarket.L2;

/// <summary>One block of the derived L2 chain.</summary>
/// <param name="OnL1">L1 holds this header (else it is executed ahead of L1, from a signed proposal, and L1 may replace it).</param>
public sealed record DerivedBlock(ulong Number, Hash32 HeaderHash, Header? Header, EngineBlock Engine, bool OnL1, IReadOnlyList<SkippedTx> Skipped)
{
    public ulong Slot => Header?.Slot ?? 0;
}

/// <summary>What a simulation on the tip gave (nothing of it is kept).</summary>
public sealed record SimulatedBlock(ulong Number, ulong GasUsed, System.Numerics.BigInteger CoinbaseGain, IReadOnlyList<SkippedTx> Skipped);

/// <summary>
/// Derives the L2 chain on the engine: block N is the header numbered N, executed in order, as L1 holds it and, ahead
/// of L1, as signed proposals announce it. Where L1 and a proposal differ, L1 wins: the engine rolls back to the common
/// parent and executes L1's block. The engine is only a cache: on start it is reset and the chain derived from L1 again.
/// Every use of the engine (derivation, simulation, reads) takes <see cref="Engine"/> under one lock, so nobody sees a
/// simulated block.
/// </summary>
public sealed class Derivation(L2Engine engine, System.Numerics.BigInteger l2ChainId, ILogger logger)
{
    readonly List<DerivedBlock> _chain = [];
    readonly Dictionary<Hash32, DerivedBlock> _byHash = [];
    readonly PriorityGate _lock = new();
    volatile DerivedBlock? _tip;
    volatile DerivedBlock? _confirmed;
    int _waitingReads;
    readonly int[] _waitingSimulations = new int[2]; // [ordinary, priority]

    /// <summary>The most simulations that may wait for the engine; more are refused as busy.</summary>
    public int MaxWaitingSimulations { get; init; } = 32;

    long _simulationsRun;
    /// <summary>Blocks simulated on the engine since the start (pbs_status: <c>simulations</c>).</summary>
    public long SimulationsRun => Interlocked.Read(ref _simulationsRun);
    /// <summary>The most reads that may wait for the engine (public RPC reads; more are refused as busy), and the most
    /// priority simulations (a relay's close; they go before every other use of the engine).</summary>
    public int MaxWaitingReads { get; init; } = 16;
    public int MaxWaitingPriority { get; init; } = 8;

    /// <summary>Raised (under the lock) after a block was executed or rolled back.</summary>
    public event Action? ChainChanged;

    public DerivedBlock Tip => _tip ?? throw new InvalidOperationException("the derivation has not started");
    /// <summary>The newest block L1 holds.</summary>
    public DerivedBlock Confirmed => _confirmed ?? throw new InvalidOperationException("the derivation has not started");

    public DerivedBlock? ByNumber(ulong number)
    {
        lock (_chain) return number < (ulong)_chain.Count ? _chain[(int)number] : null;
    }

    public DerivedBlock? ByHeaderHash(Hash32 hash)
    {
        lock (_chain) return _byHash.GetValueOrDefault(hash);
    }

    /// <summary>Resets the engine to the genesis and checks its chain id.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        await _lock.WaitAsync(ct);
        try
        {
            var chainId = await engine.ChainIdAsync(ct);
            if (chainId != l2ChainId) throw new InvalidOperationException($"the L2 engine at {engine.Rpc.Url} has chain id {chainId}, not the market's L2 chain id {l2ChainId}");
            await engine.ResetAsync(ct);
            var genesis = await engine.BlockAsync(0, ct);
            lock (_chain)
            {
                _chain.Clear();
                _byHash.Clear();
                var g = new DerivedBlock(0, Hash32.Zero, null, genesis, true, []);
                _chain.Add(g);
                _byHash[Hash32.Zero] = g;
                _tip = _confirmed = g;
            }
        }
        finally { _lock.Release(); }
        ChainChanged?.Invoke();
    }

    /// <summary>Runs <paramref name="read"/> with the engine to itself (no block is being executed or simulated).</summary>
    /// <remarks>At most <see cref="MaxWaitingReads"/> wait (else <see cref="L2BusyException"/>): readers of the public RPC
    /// cannot queue without bound ahead of the derivation and the simulations.</remarks>
    public async Task<T> ReadAsync<T>(Func<L2Engine, Task<T>> read, CancellationToken ct)
    {
        if (Interlocked.Increment(ref _waitingReads) > MaxWaitingReads)
        {
            Interlocked.Decrement(ref _waitingReads);
            throw new L2BusyException($"{MaxWaitingReads} reads are already waiting for the engine; retry shortly");
        }
        try
        {
            await _lock.WaitAsync(ct);
        }
        finally { Interlocked.Decrement(ref _waitingReads); }
        try { return await read(engine); }
        finally { _lock.Release(); }
    }

    /// <summary>Applies a header L1 holds. Returns what happened, for the log.</summary>
    public async Task<string> ApplyL1Async(PostedBlock posted, CancellationToken ct)
    {
        var h = posted.Header;
        await _lock.WaitAsync(ct);
        ct = CancellationToken.None; // from here the engine is changed: a cancelled caller must not leave it half done
        try
        {
            await EnsureEngineAtTipAsync();
            var n = h.Number;
            if (n == 0) return $"slot {h.Slot}: number 0 is the genesis; ignored";
            var count = (ulong)_chain.Count;
            if (n < count)
            {
                var ours = _chain[(int)n];
                if (ours.HeaderHash == posted.HeaderHash)
                {
                    if (!ours.OnL1) Replace(ours with { OnL1 = true });
                    _confirmed = _chain[(int)n];
                    return $"block {n} (slot {h.Slot}) is on L1";
                }
                if (ours.OnL1) throw new InvalidOperationException($"L1 holds two headers numbered {n}: {ours.HeaderHash} and {posted.HeaderHash}");
                // L1 wins: drop the proposed blocks from n on.
                var depth = count - n;
                await engine.RollbackAsync(depth, ct);
                Truncate(n);
                logger.LogWarning("L1 wins at block {Number}: L1 holds {L1Header} (slot {Slot}), the proposal had {Ours} (slot {OurSlot}); {Depth} block(s) rolled back",
                    n, posted.HeaderHash, h.Slot, ours.HeaderHash, ours.Slot, depth);
                count = n;
            }
            if (n != count) throw new InvalidOperationException($"L1 header numbered {n} (slot {h.Slot}) does not follow block {count - 1}");
            var parent = _chain[^1];
            if (h.ParentHash != parent.HeaderHash)
                throw new InvalidOperationException($"L1 header {posted.HeaderHash} (slot {h.Slot}) has parent {h.ParentHash}, not block {n - 1}'s {parent.HeaderHash}");
            var block = await ExecuteLockedAsync(h, posted.HeaderHash, posted.Payload, onL1: true, ct);
            _confirmed = block;
            return Describe(block, "from L1");
        }
        finally { _lock.Release(); }
    }

    /// <summary>
    /// Applies a proposed header ahead of L1 when it extends the tip (its signatures are the caller's to check).
    /// Returns null when it was executed, else why not.
    /// </summary>
    public async Task<string?> ApplyProposedAsync(Header h, Hash32 headerHash, byte[] payload, CancellationToken ct)
    {
        if (ByHeaderHash(headerHash) is not null) return "already executed";
        await _lock.WaitAsync(ct);
        ct = CancellationToken.None;
        try
        {
            await EnsureEngineAtTipAsync();
            var tip = _chain[^1];
            if (h.Number != tip.Number + 1 || h.ParentHash != tip.HeaderHash)
                return $"number {h.Number} on parent {h.ParentHash} does not extend the tip {tip.Number} ({tip.HeaderHash})";
            var block = await ExecuteLockedAsync(h, headerHash, payload, onL1: false, ct);
            logger.LogInformation("{What}", Describe(block, "ahead of L1"));
            return null;
        }
        finally { _lock.Release(); }
    }

    /// <summary>
    /// Executes a candidate block on the tip, exactly as the derivation would, reads what it did, and rolls it back.
    /// Null when <paramref name="parentHash"/> is not the tip (not executed yet, or no longer the tip).
    /// </summary>
    /// <param name="priority">A relay's close (docs/l2.md, optimistic simulation): it goes before every other waiting use of
    /// the engine, with a limit of its own (<see cref="MaxWaitingPriority"/>).</param>
    public async Task<SimulatedBlock?> SimulateAsync(Hash32 parentHash, ulong timestampMs, Address builder, byte[] payload, CancellationToken ct, bool priority = false)
    {
        var lane = priority ? 1 : 0;
        var max = priority ? MaxWaitingPriority : MaxWaitingSimulations;
        if (Interlocked.Increment(ref _waitingSimulations[lane]) > max)
        {
            Interlocked.Decrement(ref _waitingSimulations[lane]);
            throw new L2BusyException($"{max} {(priority ? "priority " : "")}simulations are already waiting for the engine");
        }
        try
        {
            await _lock.WaitAsync(priority, ct);
        }
        finally { Interlocked.Decrement(ref _waitingSimulations[lane]); }
        ct = CancellationToken.None; // a simulation, once started, always ends with its rollback
        Interlocked.Increment(ref _simulationsRun);
        try
        {
            await EnsureEngineAtTipAsync();
            var tip = _chain[^1];
            if (tip.HeaderHash != parentHash) return null;
            var executed = await ExecuteOnEngineAsync(tip, timestampMs, builder, payload, ct);
            try
            {
                return new SimulatedBlock(executed.Block.Number, executed.Block.GasUsed, executed.CoinbaseGain, executed.Skipped);
            }
            finally
            {
                await engine.RollbackAsync(1, CancellationToken.None);
            }
        }
        finally { _lock.Release(); }
    }

    /// <summary>
    /// Under the lock: the engine's newest block must be the derived tip. Blocks above it (left by anything that changed the
    /// engine and did not finish) are rolled back; an engine behind the tip is an error (the loop derives again).
    /// </summary>
    async Task EnsureEngineAtTipAsync()
    {
        var tip = _chain[^1];
        var height = Quantity.ToUInt64(await engine.Rpc.CallAsync("eth_blockNumber", [], CancellationToken.None));
        if (height == tip.Number) return;
        if (height < tip.Number) throw new InvalidOperationException($"the engine is at block {height}, behind the derived tip {tip.Number}");
        logger.LogWarning("the engine is at block {Height}, above the derived tip {Tip}: rolling back {Depth} block(s)", height, tip.Number, height - tip.Number);
        await engine.RollbackAsync(height - tip.Number, CancellationToken.None);
    }

    async Task<ExecutedBlock> ExecuteOnEngineAsync(DerivedBlock parent, ulong timestampMs, Address coinbase, byte[] payload, CancellationToken ct)
    {
        var txs = PayloadCodec.Split(payload);
        var timestamp = L2Rules.EvmTimestamp(parent.Engine.Timestamp, timestampMs);
        var executed = await engine.ExecuteAsync(txs ?? [], timestamp, coinbase, ct);
        if (executed.Block.Number != parent.Number + 1)
            throw new InvalidOperationException($"the engine mined block {executed.Block.Number}, expected {parent.Number + 1}: it is not at the derived tip (was it used by someone else?)");
        return txs is null ? executed with { Skipped = [new SkippedTx(0, null, "the payload is not an RLP list of transactions: the block is empty")] } : executed;
    }

    async Task<DerivedBlock> ExecuteLockedAsync(Header h, Hash32 headerHash, byte[] payload, bool onL1, CancellationToken ct)
    {
        var parent = _chain[^1];
        var executed = await ExecuteOnEngineAsync(parent, h.TimestampMs, L2Rules.Coinbase(h), payload, ct);
        var block = new DerivedBlock(h.Number, headerHash, h, executed.Block, onL1, executed.Skipped);
        lock (_chain)
        {
            _chain.Add(block);
            _byHash[headerHash] = block;
            _tip = block;
        }
        ChainChanged?.Invoke();
        return block;
    }

    void Replace(DerivedBlock b)
    {
        lock (_chain)
        {
            _chain[(int)b.Number] = b;
            _byHash[b.HeaderHash] = b;
            if (_tip?.Number == b.Number) _tip = b;
        }
    }

    void Truncate(ulong count)
    {
        lock (_chain)
        {
            while ((ulong)_chain.Count > count)
            {
                _byHash.Remove(_chain[^1].HeaderHash);
                _chain.RemoveAt(_chain.Count - 1);
            }
            _tip = _chain[^1];
        }
        ChainChanged?.Invoke();
    }

    static string Describe(DerivedBlock b, string source) =>
        $"block {b.Number} (slot {b.Slot}, header {b.HeaderHash}) executed {source}: {b.Engine.Transactions.Count} transaction(s), gas {b.Engine.GasUsed}" +
        (b.Skipped.Count == 0 ? "" : $", {b.Skipped.Count} skipped ({string.Join("; ", b.Skipped.Take(3).Select(s => $"#{s.Index}: {s.Reason}"))})");
}

/// <summary>Too many simulations are waiting for the engine.</summary>
public sealed class L2BusyException(string message) : Exception(message);
