using System.Numerics;
using PbsMarket.Core;

namespace PbsMarket.L2;

/// <summary>A signed L2 transaction waiting for a builder.</summary>
public sealed record PendingTx(Hash32 Hash, Address From, ulong Nonce, byte[] Raw, ulong Gas, BigInteger MaxFeePerGas, BigInteger MaxPriorityFeePerGas, long ReceivedAtMs)
{
    public BigInteger Value { get; init; }
    /// <summary>What the builder earns per gas (the L2 has no base fee).</summary>
    public BigInteger Tip => BigInteger.Min(MaxFeePerGas, MaxPriorityFeePerGas);
}

/// <summary>Why a transaction was not taken into the mempool (the JSON-RPC error message).</summary>
public sealed class MempoolRefusal(string message) : Exception(message);

/// <summary>
/// The L2 node's mempool: what users send with <c>eth_sendRawTransaction</c>, for builders to take
/// (<c>pbs_pendingTransactions</c>). Bounded: at most <see cref="MaxTxs"/> transactions and <see cref="MaxBytes"/> bytes in
/// all, <see cref="MaxPerSender"/> per sender and <see cref="MaxTxBytes"/> each. A transaction must tip at least
/// <see cref="MinTipPerGas"/>, carry at least its intrinsic gas, and its sender must be able to pay it together with its
/// waiting ones (<c>Σ gas × max fee + value</c>). A transaction with the nonce of a waiting one replaces it only with a tip
/// at least 10% higher; when the pool is full, a better-tipping transaction evicts the worst-tipping last transaction of a
/// sender. A transaction leaves once its sender's nonce on the chain has passed it, or after <see cref="MaxAge"/>.
/// </summary>
public sealed class Mempool(TimeProvider time)
{
    public int MaxTxs { get; init; } = 10_000;
    public int MaxPerSender { get; init; } = 64;
    public int MaxTxBytes { get; init; } = 128 * 1024;
    public long MaxBytes { get; init; } = 64L << 20;
    public BigInteger MinTipPerGas { get; init; } = 1;
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromMinutes(10);

    readonly Dictionary<Address, SortedDictionary<ulong, PendingTx>> _bySender = [];
    readonly Dictionary<Hash32, PendingTx> _byHash = [];
    readonly object _lock = new();
    long _bytes;

    public int Count { get { lock (_lock) return _byHash.Count; } }

    /// <summary>Checks and adds a raw transaction; <paramref name="stateNonce"/> and <paramref name="balance"/> are the sender's on the tip.</summary>
    public async Task<PendingTx> AddAsync(byte[] raw, BigInteger l2ChainId, Func<Address, Task<(ulong Nonce, BigInteger Balance)>> account)
    {
        if (raw.Length > MaxTxBytes) throw new MempoolRefusal($"transaction of {raw.Length} bytes exceeds the limit of {MaxTxBytes}");
        var tx = PayloadCodec.DecodeTransaction(raw, out var error) ?? throw new MempoolRefusal($"invalid transaction: {error!.Message}");
        if (tx.ChainId != l2ChainId) throw new MempoolRefusal($"chain id {tx.ChainId} is not the L2 chain id {l2ChainId}");
        Address from;
        try { from = PayloadCodec.RecoverSender(raw); }
        catch (FormatException e) { throw new MempoolRefusal($"invalid signature: {e.Message}"); }
        lock (_lock)
            if (_byHash.TryGetValue(tx.TxHash, out var known)) return known; // the same transaction again
        var (nonce, balance) = await account(from);
        if (tx.Nonce < nonce) throw new MempoolRefusal($"nonce too low: {from}'s next nonce is {nonce}, got {tx.Nonce}");
        if (tx.Nonce >= nonce + (ulong)MaxPerSender) throw new MempoolRefusal($"nonce too high: {from}'s next nonce is {nonce}, the mempool keeps at most {MaxPerSender} ahead");
        var pendingTip = BigInteger.Min(tx.MaxFeePerGas, tx.MaxPriorityFeePerGas);
        if (pendingTip < MinTipPerGas) throw new MempoolRefusal($"transaction underpriced: a tip of {pendingTip} wei per gas, the minimum is {MinTipPerGas}");
        var intrinsic = IntrinsicGas(tx);
        if (tx.GasLimit < intrinsic) throw new MempoolRefusal($"intrinsic gas too low: gas limit {tx.GasLimit}, the transaction needs at least {intrinsic}");
        var cost = tx.MaxFeePerGas * tx.GasLimit + tx.Value;
        BigInteger waiting = 0;
        lock (_lock)
            if (_bySender.TryGetValue(from, out var others))
                foreach (var o in others.Values.Where(o => o.Nonce != tx.Nonce)) waiting += o.MaxFeePerGas * o.Gas + o.Value;
        if (balance < cost + waiting) throw new MempoolRefusal($"insufficient funds for gas * price + value: balance {balance}, cost {cost}{(waiting.IsZero ? "" : $" besides {waiting} for the sender's waiting transactions")}");
        var pending = new PendingTx(tx.TxHash, from, tx.Nonce, raw, tx.GasLimit, tx.MaxFeePerGas, tx.MaxPriorityFeePerGas, time.GetUtcNow().ToUnixTimeMilliseconds()) { Value = tx.Value };
        lock (_lock)
        {
            if (!_bySender.TryGetValue(from, out var txs)) _bySender[from] = txs = [];
            if (txs.TryGetValue(tx.Nonce, out var old))
            {
                if (pending.Tip * 10 < old.Tip * 11) throw new MempoolRefusal($"replacement transaction underpriced: the waiting one tips {old.Tip} per gas, a replacement needs 10% more");
                _byHash.Remove(old.Hash);
                _bytes -= old.Raw.Length;
            }
            else
            {
                if (txs.Count >= MaxPerSender) throw new MempoolRefusal($"{from} has {MaxPerSender} transactions waiting");
                while (_byHash.Count >= MaxTxs || _bytes + raw.Length > MaxBytes)
                {
                    // Full: the worst-tipping last transaction of any sender makes room, if it tips less than this one.
                    var worst = _bySender.Where(kv => kv.Key != from && kv.Value.Count > 0).Select(kv => kv.Value.Values.Last()).MinBy(t => t.Tip);
                    if (worst is null || worst.Tip >= pending.Tip)
                        throw new MempoolRefusal($"txpool is full ({_byHash.Count} transactions, {_bytes} bytes); a tip above {worst?.Tip ?? 0} per gas gets in");
                    RemoveLocked(worst);
                }
            }
            txs[tx.Nonce] = pending;
            _byHash[tx.TxHash] = pending;
            _bytes += raw.Length;
        }
        return pending;
    }

    /// <summary>The highest nonce + 1 of <paramref name="from"/>'s run of waiting transactions from <paramref name="stateNonce"/> on.</summary>
    public ulong PendingNonce(Address from, ulong stateNonce)
    {
        lock (_lock)
        {
            if (!_bySender.TryGetValue(from, out var txs)) return stateNonce;
            var n = stateNonce;
            while (txs.ContainsKey(n)) n++;
            return n;
        }
    }

    /// <summary>
    /// What a builder can include on the tip, best tip first, each sender's transactions in nonce order from its chain
    /// nonce with no gap: at most <paramref name="limit"/>.
    /// </summary>
    public IReadOnlyList<PendingTx> Executable(Func<Address, ulong> stateNonce, int limit)
    {
        lock (_lock)
        {
            var runs = new List<List<PendingTx>>();
            foreach (var (from, txs) in _bySender)
            {
                var run = new List<PendingTx>();
                var n = stateNonce(from);
                while (txs.TryGetValue(n, out var t)) { run.Add(t); n++; }
                if (run.Count > 0) runs.Add(run);
            }
            // A simple greedy order: senders by their first transaction's tip, then time; each sender's run stays in order.
            return [.. runs.OrderByDescending(r => r[0].Tip).ThenBy(r => r[0].ReceivedAtMs).SelectMany(r => r).Take(limit)];
        }
    }

    public IReadOnlyCollection<Address> Senders()
    {
        lock (_lock) return [.. _bySender.Keys];
    }

    void RemoveLocked(PendingTx t)
    {
        if (_bySender.TryGetValue(t.From, out var txs))
        {
            txs.Remove(t.Nonce);
            if (txs.Count == 0) _bySender.Remove(t.From);
        }
        if (_byHash.Remove(t.Hash)) _bytes -= t.Raw.Length;
    }

    /// <summary>EIP-2028/EIP-2930/EIP-3860 intrinsic gas: 21,000, data bytes (4 zero, 16 other), a creation's 32,000 and init-code words, the access list.</summary>
    public static ulong IntrinsicGas(DecodedTx tx)
    {
        ulong gas = 21_000;
        foreach (var b in tx.Data.Span) gas += b == 0 ? 4UL : 16UL;
        if (tx.To is null) gas += 32_000 + 2 * (((ulong)tx.Data.Length + 31) / 32);
        foreach (var e in tx.AccessList) gas += 2_400 + 1_900 * (ulong)e.StorageKeys.Count;
        return gas;
    }

    /// <summary>Drops what the chain has passed (nonce below the sender's) and what is older than <see cref="MaxAge"/>.</summary>
    public int Prune(Func<Address, ulong> stateNonce)
    {
        var oldest = time.GetUtcNow().ToUnixTimeMilliseconds() - (long)MaxAge.TotalMilliseconds;
        var dropped = 0;
        lock (_lock)
        {
            foreach (var from in _bySender.Keys.ToList())
            {
                var txs = _bySender[from];
                var n = stateNonce(from);
                foreach (var t in txs.Values.Where(t => t.Nonce < n || t.ReceivedAtMs < oldest).ToList())
                {
                    RemoveLocked(t);
                    dropped++;
                }
            }
        }
        return dropped;
    }
}
