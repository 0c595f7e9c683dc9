using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Nethereum.Hex.HexTypes;
using Nethereum.JsonRpc.Client;
using Nethereum.Model;
using Nethereum.RPC.Eth.DTOs;
using Nethereum.Signer;
using PbsMarket.Core;

namespace PbsMarket.L1;

public sealed record L1PosterOptions
{
    /// <summary>Most headers in one postHeaders transaction.</summary>
    public int MaxBatch { get; init; } = 32;
    /// <summary>The L1 block gas limit batches must fit in (with EIP-7825's 2^24 per transaction).</summary>
    public ulong BlockGasLimit { get; init; } = 30_000_000;
    /// <summary>How long one PostAsync waits for its transaction to be mined; after that its slots are Deferred and
    /// the transaction stays journaled (the next PostAsync resolves it first).</summary>
    public TimeSpan ReceiptTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Replace (same nonce, higher fees) a transaction not mined after this long.</summary>
    public TimeSpan ReplaceAfter { get; init; } = TimeSpan.FromSeconds(12);
    /// <summary>Fee bump of a replacement, in percent (at least 12.5, rounded up).</summary>
    public decimal FeeBumpPercent { get; init; } = 15m;
    /// <summary>Highest maxFeePerGas the poster ever signs (wei).</summary>
    public BigInteger MaxFeePerGasCap { get; init; } = BigInteger.Parse("500000000000", System.Globalization.CultureInfo.InvariantCulture); // 500 gwei
    /// <summary>Lowest priority fee (wei) when the node suggests less.</summary>
    public BigInteger MinPriorityFeePerGas { get; init; } = 1_000_000_000; // 1 gwei
    /// <summary>How often receipts are polled.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>Timeout of each RPC call, and how often transport failures are retried.</summary>
    public TimeSpan RpcTimeout { get; init; } = TimeSpan.FromSeconds(5);
    public int RpcRetries { get; init; } = 3;
}

public enum PostStatus
{
    /// <summary>Mined in <see cref="PostOutcome.TxHash"/> at <see cref="PostOutcome.BlockNumber"/>.</summary>
    Posted,
    /// <summary>The inbox already holds a header for the slot (whoever posted it): nothing more to do.</summary>
    AlreadyPosted,
    /// <summary>The contract refuses the item (<see cref="PostOutcome.Error"/>): permanent, do not retry.</summary>
    Rejected,
    /// <summary>Not posted for a transient reason (<see cref="PostOutcome.Reason"/>): retry later.</summary>
    Deferred,
}

public sealed record PostOutcome(ulong Slot, PostStatus Status, string? TxHash = null, ulong? BlockNumber = null, ContractError? Error = null,
    string? Reason = null, Hash32? HeaderHash = null)
{
    public override string ToString() => Status switch
    {
        PostStatus.Posted => $"slot {Slot}: posted in {TxHash} (block {BlockNumber})",
        PostStatus.AlreadyPosted => $"slot {Slot}: already posted ({HeaderHash})",
        PostStatus.Rejected => $"slot {Slot}: rejected {Error}",
        _ => $"slot {Slot}: deferred ({Reason})",
    };
}

/// <summary>How a journaled (in-flight) transaction ended.</summary>
public sealed record JournalResolution(PosterJournalEntry Entry, JournalResolutionKind Kind, string? LandedTxHash, ulong? BlockNumber);

public enum JournalResolutionKind
{
    /// <summary>One of the journaled versions was mined and succeeded.</summary>
    Landed,
    /// <summary>One was mined but reverted (e.g. another poster took a slot first).</summary>
    Reverted,
    /// <summary>The nonce was used by a transaction the journal does not know: none of ours can land.</summary>
    NonceTakenElsewhere,
    /// <summary>Still not mined after ReceiptTimeout: kept in the journal.</summary>
    StillPending,
}

/// <summary>
/// Gets proposed headers into the inbox: drops slots already held, simulates (batch, then item by item to drop only
/// the invalid ones), sends one EIP-1559 transaction per batch with a nonce it manages itself, replaces it with higher
/// fees when it is not mined, and journals every signed transaction before broadcasting it so a restart resolves it.
/// One PostAsync at a time (calls queue).
/// </summary>
public sealed class L1Poster : IAsyncDisposable
{
    /// <summary>Contract errors that may pass later (the item is Deferred, not Rejected).</summary>
    public static readonly IReadOnlySet<string> TransientErrors = new HashSet<string> { "SlotNotStarted", "Revert", "Unknown", "Malformed" };

    readonly InboxClient _inbox;
    readonly EthECKey _key;
    readonly IPosterJournal _journal;
    readonly L1PosterOptions _options;
    readonly ILogger _log;
    readonly L1RpcPolicy _rpc;
    readonly SemaphoreSlim _gate = new(1, 1);
    readonly CancellationTokenSource _lifetime = new();
    bool _started;
    BigInteger _chainId;
    ulong _nonce;

    public L1Poster(InboxClient inbox, string senderKey, IPosterJournal? journal = null, L1PosterOptions? options = null, ILogger? logger = null)
    {
        _inbox = inbox;
        _key = new EthECKey(senderKey);
        _journal = journal ?? new InMemoryPosterJournal();
        _options = options ?? new L1PosterOptions();
        if (_options.MaxBatch < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxBatch must be >= 1");
        if (_options.FeeBumpPercent < 12.5m) throw new ArgumentOutOfRangeException(nameof(options), "FeeBumpPercent must be >= 12.5");
        _log = logger ?? NullLogger.Instance;
        _rpc = new L1RpcPolicy(_options.RpcTimeout, _options.RpcRetries);
        Sender = _key.GetPublicAddress().ToLowerInvariant();
    }

    /// <summary>The address that signs and pays for the posts.</summary>
    public string Sender { get; }

    /// <summary>The next nonce the poster will use (after start).</summary>
    public ulong NextNonce => _nonce;

    public async ValueTask DisposeAsync()
    {
        if (_lifetime.IsCancellationRequested) return;
        await _lifetime.CancelAsync();
        await _gate.WaitAsync(); // let a running PostAsync unwind (its transaction stays journaled)
        _gate.Release();
        _lifetime.Dispose();
    }

    /// <summary>Resolves a journaled transaction left by an earlier run (or an earlier call that timed out):
    /// rebroadcasts it, waits up to ReceiptTimeout (replacing it with higher fees if needed), then re-syncs the nonce.
    /// Null when the journal was empty.</summary>
    public async Task<JournalResolution?> ResolvePendingAsync(CancellationToken ct = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _lifetime.Token);
        await _gate.WaitAsync(linked.Token);
        try { return await StartAndResolveAsync(linked.Token); }
        finally { _gate.Release(); }
    }

    async Task<JournalResolution?> StartAndResolveAsync(CancellationToken ct)
    {
        if (!_started)
        {
            _chainId = (await Rpc(() => _inbox.Web3.Eth.ChainId.SendRequestAsync(), ct)).Value;
            _started = true;
            await SyncNonceAsync(ct);
        }
        var entry = await _journal.LoadAsync();
        if (entry is null) return null;
        _log.LogInformation("resolving journaled transaction nonce {Nonce} for slots {Slots} ({Count} version(s))",
            entry.Nonce, string.Join(",", entry.Slots), entry.Transactions.Count);
        foreach (var tx in entry.Transactions.Reverse()) await TryBroadcastAsync(tx, ct);
        var resolution = await AwaitEntryAsync(entry, ct);
        if (resolution.Kind != JournalResolutionKind.StillPending)
        {
            await _journal.ClearAsync();
            await SyncNonceAsync(ct);
        }
        return resolution;
    }

    async Task SyncNonceAsync(CancellationToken ct)
    {
        var pending = await Rpc(() => _inbox.Web3.Eth.Transactions.GetTransactionCount.SendRequestAsync(Sender, BlockParameter.CreatePending()), ct);
        _nonce = (ulong)pending.Value;
    }

    /// <summary>Posts the items (any order; one per slot, the first wins) and reports one outcome per distinct slot,
    /// in slot order.</summary>
    public async Task<IReadOnlyList<PostOutcome>> PostAsync(IReadOnlyList<PostItem> items, CancellationToken ct = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _lifetime.Token);
        ct = linked.Token;
        await _gate.WaitAsync(ct);
        try
        {
            var outcomes = new SortedDictionary<ulong, PostOutcome>();
            var todo = items.GroupBy(i => i.Slot).Select(g => g.First()).OrderBy(i => i.Slot).ToList();

            var resolution = await StartAndResolveAsync(ct);
            if (resolution is { Kind: JournalResolutionKind.StillPending })
            {
                foreach (var i in todo)
                    outcomes[i.Slot] = new PostOutcome(i.Slot, PostStatus.Deferred, Reason: $"an earlier transaction (nonce {resolution.Entry.Nonce}) is still pending");
                return [.. outcomes.Values];
            }
            if (resolution is { Kind: JournalResolutionKind.Landed, LandedTxHash: { } landed })
            {
                var slots = resolution.Entry.Slots.ToHashSet();
                foreach (var i in todo.Where(i => slots.Contains(i.Slot)).ToList())
                {
                    if (await _inbox.HeaderOfSlotAsync(i.Slot, ct) == i.Header.Hash())
                    {
                        outcomes[i.Slot] = new PostOutcome(i.Slot, PostStatus.Posted, landed, resolution.BlockNumber, HeaderHash: i.Header.Hash());
                        todo.Remove(i);
                    }
                }
            }

            // Batches by count, bytes (128 KiB per transaction) and gas (EIP-7825, block gas limit): one oversized
            // batch would be refused by every node and stall posting for good.
            foreach (var chunk in L1Limits.Pack(todo, i => i.Payload.Length, _options.MaxBatch, _options.BlockGasLimit))
                foreach (var o in await PostChunkAsync(chunk, retryOnNonceError: true, ct)) outcomes[o.Slot] = o;
            return [.. outcomes.Values];
        }
        finally
        {
            _gate.Release();
        }
    }

    async Task<List<PostOutcome>> PostChunkAsync(List<PostItem> chunk, bool retryOnNonceError, CancellationToken ct)
    {
        var outcomes = new List<PostOutcome>();
        // 1. Slots at or behind the inbox's head are done (L1 would skip them): posted by someone, or missed for good.
        var candidates = new List<PostItem>();
        try
        {
            var count = await _inbox.HeaderCountAsync(ct);
            var last = count == 0 ? (ulong?)null : await _inbox.LastPostedSlotAsync(ct);
            foreach (var item in chunk)
            {
                if (last is not { } l || item.Slot > l) { candidates.Add(item); continue; }
                var held = await _inbox.HeaderOfSlotAsync(item.Slot, ct);
                outcomes.Add(held.IsZero
                    ? new PostOutcome(item.Slot, PostStatus.Rejected, Error: new ContractError("BehindHead", [item.Slot.ToString(CultureInfo.InvariantCulture), l.ToString(CultureInfo.InvariantCulture)], "0x"))
                    : new PostOutcome(item.Slot, PostStatus.AlreadyPosted, HeaderHash: held));
            }
        }
        catch (Exception e) when (IsRpcFailure(e, ct)) { return Defer(outcomes, chunk, $"could not read the head: {e.Message}"); }
        if (candidates.Count == 0) return outcomes;

        // 2. Simulate the batch; on failure, grow a valid prefix item by item (later items may depend on earlier ones).
        List<PostItem> accepted;
        ContractError? batchError;
        try { batchError = await _inbox.SimulateAsync(candidates, Sender, ct); }
        catch (Exception e) when (IsRpcFailure(e, ct)) { return Defer(outcomes, candidates, $"simulation failed: {e.Message}"); }
        if (batchError is null) accepted = candidates;
        else
        {
            _log.LogInformation("batch of {Count} fails simulation with {Error}; checking item by item", candidates.Count, batchError);
            accepted = [];
            foreach (var item in candidates)
            {
                ContractError? error;
                try { error = await _inbox.SimulateAsync([.. accepted, item], Sender, ct); }
                catch (Exception e) when (IsRpcFailure(e, ct)) { outcomes.Add(Deferred(item, $"simulation failed: {e.Message}")); continue; }
                if (error is null) accepted.Add(item);
                else outcomes.Add(Classify(item, error));
            }
            if (accepted.Count == 0) return outcomes;
        }

        // 3. Sign, journal, broadcast, wait (replacing if slow).
        var data = InboxClient.EncodePostHeaders(accepted);
        ulong gasLimit;
        (BigInteger maxFee, BigInteger priority) fees;
        try
        {
            var estimate = await Rpc(() => _inbox.Web3.Eth.Transactions.EstimateGas.SendRequestAsync(
                new CallInput { From = Sender, To = _inbox.Inbox, Data = data }), ct);
            gasLimit = (ulong)(estimate.Value * 5 / 4) + 25_000;
            fees = await SuggestFeesAsync(ct);
        }
        catch (Exception e) when (IsRpcFailure(e, ct)) { return Defer(outcomes, accepted, $"could not price the transaction: {e.Message}"); }

        var nonce = _nonce;
        var tx = Sign(nonce, data, gasLimit, fees.maxFee, fees.priority);
        var entry = new PosterJournalEntry(nonce, [.. accepted.Select(i => i.Slot)], data, gasLimit, [tx], DateTimeOffset.UtcNow);
        await _journal.SaveAsync(entry);
        _log.LogInformation("posting slots {Slots} in {Hash} (nonce {Nonce}, maxFee {MaxFee}, tip {Tip})",
            string.Join(",", entry.Slots), tx.Hash, nonce, fees.maxFee, fees.priority);
        var sent = await TryBroadcastAsync(tx, ct);
        if (sent == BroadcastResult.NonceError || sent == BroadcastResult.Refused)
        {
            // The node refused this transaction outright, so it cannot land: forget it.
            await _journal.ClearAsync();
            await SyncNonceAsync(ct);
            if (sent == BroadcastResult.NonceError && retryOnNonceError)
            {
                _log.LogWarning("nonce {Nonce} refused; re-synced to {Next}, retrying the batch once", nonce, _nonce);
                var again = await PostChunkAsync(accepted, retryOnNonceError: false, ct);
                return [.. outcomes, .. again];
            }
            return Defer(outcomes, accepted, $"the node refused transaction {tx.Hash}");
        }
        _nonce = nonce + 1;

        var resolution = await AwaitEntryAsync(entry, ct);
        switch (resolution.Kind)
        {
            case JournalResolutionKind.Landed:
                await _journal.ClearAsync();
                // An item another poster got in first was skipped by L1 (HeaderSkipped), not posted by us.
                var ours = (await _inbox.GetHeaderPostedAsync(resolution.BlockNumber!.Value, resolution.BlockNumber, ct))
                    .Where(l => l.TxHash.Equals(resolution.LandedTxHash, StringComparison.OrdinalIgnoreCase)).Select(l => l.HeaderHash).ToHashSet();
                foreach (var i in accepted)
                {
                    var hash = i.Header.Hash();
                    if (ours.Contains(hash)) outcomes.Add(new PostOutcome(i.Slot, PostStatus.Posted, resolution.LandedTxHash, resolution.BlockNumber, HeaderHash: hash));
                    else
                    {
                        var held = await _inbox.HeaderOfSlotAsync(i.Slot, ct);
                        outcomes.Add(held == hash || !held.IsZero ? new PostOutcome(i.Slot, PostStatus.AlreadyPosted, HeaderHash: held)
                            : new PostOutcome(i.Slot, PostStatus.Rejected, Error: new ContractError("BehindHead", [i.Slot.ToString(CultureInfo.InvariantCulture)], "0x")));
                    }
                }
                break;
            case JournalResolutionKind.StillPending:
                // Keep the journal: the next call resolves it before using the nonce again.
                _nonce = nonce;
                outcomes.AddRange(accepted.Select(i => Deferred(i, $"transaction nonce {nonce} not mined within {_options.ReceiptTimeout}")));
                break;
            default:
                await _journal.ClearAsync();
                await SyncNonceAsync(ct);
                foreach (var i in accepted)
                {
                    var h = await _inbox.HeaderOfSlotAsync(i.Slot, ct);
                    outcomes.Add(h.IsZero ? Deferred(i, $"transaction {resolution.LandedTxHash ?? "(replaced elsewhere)"} did not post it ({resolution.Kind})")
                        : new PostOutcome(i.Slot, PostStatus.AlreadyPosted, HeaderHash: h));
                }
                break;
        }
        return outcomes;
    }

    static PostOutcome Classify(PostItem item, ContractError error) => error.Name switch
    {
        _ when TransientErrors.Contains(error.Name) => new PostOutcome(item.Slot, PostStatus.Deferred, Error: error, Reason: error.ToString()),
        // NotOnHead(headHash, headNumber, parentHash, number): while the parent is not posted yet, it may still be.
        "NotOnHead" when error.Args.Count == 4 && ulong.TryParse(error.Args[1], CultureInfo.InvariantCulture, out var headNumber)
            && headNumber + 1 < item.Header.Number => new PostOutcome(item.Slot, PostStatus.Deferred, Error: error, Reason: $"parent not on L1 yet: {error}"),
        _ => new PostOutcome(item.Slot, PostStatus.Rejected, Error: error),
    };

    static PostOutcome Deferred(PostItem i, string reason) => new(i.Slot, PostStatus.Deferred, Reason: reason);

    static List<PostOutcome> Defer(List<PostOutcome> outcomes, IEnumerable<PostItem> items, string reason)
    {
        outcomes.AddRange(items.Select(i => Deferred(i, reason)));
        return outcomes;
    }

    /// <summary>Waits for one of the entry's versions to be mined, replacing it with bumped fees every ReplaceAfter.</summary>
    async Task<JournalResolution> AwaitEntryAsync(PosterJournalEntry entry, CancellationToken ct)
    {
        var deadline = DateTimeOffset.UtcNow + _options.ReceiptTimeout;
        var lastSent = DateTimeOffset.UtcNow;
        while (true)
        {
            try
            {
                if (await FindReceiptAsync(entry, ct) is { } found) return found;
                var mined = await Rpc(() => _inbox.Web3.Eth.Transactions.GetTransactionCount.SendRequestAsync(Sender, BlockParameter.CreateLatest()), ct);
                if ((ulong)mined.Value > entry.Nonce)
                {
                    // The nonce is used. A node can report the new nonce before the receipt is queryable (seen
                    // on a loaded anvil), so look for our receipt for up to a second before calling it someone else's.
                    for (var attempt = 0; attempt < 10; attempt++)
                    {
                        if (await FindReceiptAsync(entry, ct) is { } late) return late;
                        await Task.Delay(TimeSpan.FromMilliseconds(100), ct);
                    }
                    _log.LogWarning("nonce {Nonce} was used by a transaction other than ours", entry.Nonce);
                    return new JournalResolution(entry, JournalResolutionKind.NonceTakenElsewhere, null, null);
                }
                if (DateTimeOffset.UtcNow >= deadline) return new JournalResolution(entry, JournalResolutionKind.StillPending, null, null);
                if (DateTimeOffset.UtcNow - lastSent >= _options.ReplaceAfter)
                {
                    entry = await ReplaceAsync(entry, ct);
                    lastSent = DateTimeOffset.UtcNow;
                }
            }
            catch (Exception e) when (IsRpcFailure(e, ct))
            {
                _log.LogWarning(e, "RPC failure while waiting for nonce {Nonce}", entry.Nonce);
                if (DateTimeOffset.UtcNow >= deadline) return new JournalResolution(entry, JournalResolutionKind.StillPending, null, null);
            }
            await Task.Delay(_options.PollInterval, ct);
        }
    }

    async Task<JournalResolution?> FindReceiptAsync(PosterJournalEntry entry, CancellationToken ct)
    {
        foreach (var tx in entry.Transactions)
        {
            var receipt = await Rpc(() => _inbox.Web3.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(tx.Hash), ct);
            if (receipt?.BlockNumber is null) continue;
            var ok = receipt.Status?.Value == 1;
            _log.Log(ok ? LogLevel.Information : LogLevel.Warning, "nonce {Nonce}: {Hash} mined in block {Block} ({Status})",
                entry.Nonce, tx.Hash, receipt.BlockNumber.Value, ok ? "success" : "reverted");
            return new JournalResolution(entry, ok ? JournalResolutionKind.Landed : JournalResolutionKind.Reverted, tx.Hash, (ulong)receipt.BlockNumber.Value);
        }
        return null;
    }

    /// <summary>Signs the same batch under the same nonce with fees bumped by FeeBumpPercent (capped), journals it,
    /// then broadcasts it. If the cap leaves no room for a valid bump, rebroadcasts the latest version instead.</summary>
    async Task<PosterJournalEntry> ReplaceAsync(PosterJournalEntry entry, CancellationToken ct)
    {
        var last = entry.Transactions[^1];
        var maxFee = Bump(last.MaxFeePerGas);
        var priority = Bump(last.MaxPriorityFeePerGas);
        var fresh = await SuggestFeesAsync(ct);
        maxFee = BigInteger.Max(maxFee, fresh.maxFee);
        priority = BigInteger.Max(priority, fresh.priority);
        if (maxFee > _options.MaxFeePerGasCap) maxFee = _options.MaxFeePerGasCap;
        if (priority > maxFee) priority = maxFee;
        if (maxFee < Bump(last.MaxFeePerGas) || priority < Bump(last.MaxPriorityFeePerGas))
        {
            _log.LogWarning("nonce {Nonce}: fee cap {Cap} reached, rebroadcasting {Hash}", entry.Nonce, _options.MaxFeePerGasCap, last.Hash);
            await TryBroadcastAsync(last, ct);
            return entry;
        }
        var tx = Sign(entry.Nonce, entry.Data, entry.GasLimit, maxFee, priority);
        entry = entry with { Transactions = [.. entry.Transactions, tx] };
        await _journal.SaveAsync(entry);
        _log.LogInformation("nonce {Nonce}: replacing {Old} with {New} (maxFee {MaxFee}, tip {Tip})", entry.Nonce, last.Hash, tx.Hash, maxFee, priority);
        await TryBroadcastAsync(tx, ct);
        return entry;
    }

    BigInteger Bump(BigInteger fee)
    {
        var scaled = (BigInteger)(_options.FeeBumpPercent * 1000m);
        var bumped = (fee * (100_000 + scaled) + 99_999) / 100_000;
        return bumped > fee ? bumped : fee + 1;
    }

    async Task<(BigInteger maxFee, BigInteger priority)> SuggestFeesAsync(CancellationToken ct)
    {
        var block = await Rpc(() => _inbox.Web3.Eth.Blocks.GetBlockWithTransactionsHashesByNumber.SendRequestAsync(BlockParameter.CreateLatest()), ct);
        var baseFee = block.BaseFeePerGas?.Value ?? 0;
        BigInteger priority;
        try { priority = (await Rpc(() => _inbox.Web3.Client.SendRequestAsync<HexBigInteger>(new RpcRequest(1, "eth_maxPriorityFeePerGas")), ct)).Value; }
        catch (RpcResponseException) { priority = 0; }
        priority = BigInteger.Max(priority, _options.MinPriorityFeePerGas);
        var maxFee = BigInteger.Min(baseFee * 2 + priority, _options.MaxFeePerGasCap);
        return (maxFee, BigInteger.Min(priority, maxFee));
    }

    JournaledTx Sign(ulong nonce, string data, ulong gasLimit, BigInteger maxFee, BigInteger priority)
    {
        var tx = new Transaction1559(_chainId, nonce, priority, maxFee, gasLimit, _inbox.Inbox, BigInteger.Zero, data, []);
        var raw = new Transaction1559Signer().SignTransaction(_key, tx);
        var rawHex = raw.StartsWith("0x", StringComparison.Ordinal) ? raw : "0x" + raw;
        var hash = Keccak.Hash(Hex.Decode(rawHex)).ToString();
        return new JournaledTx(hash, rawHex, maxFee, priority);
    }

    enum BroadcastResult { Sent, NonceError, Refused, Unknown }

    async Task<BroadcastResult> TryBroadcastAsync(JournaledTx tx, CancellationToken ct)
    {
        try
        {
            await Rpc(() => _inbox.Web3.Eth.Transactions.SendRawTransaction.SendRequestAsync(tx.RawTx), ct);
            return BroadcastResult.Sent;
        }
        catch (RpcResponseException e)
        {
            var message = e.RpcError?.Message ?? e.Message;
            if (message.Contains("already known", StringComparison.OrdinalIgnoreCase) || message.Contains("already imported", StringComparison.OrdinalIgnoreCase))
                return BroadcastResult.Sent;
            _log.LogWarning("broadcast of {Hash} refused: {Message}", tx.Hash, message);
            return message.Contains("nonce", StringComparison.OrdinalIgnoreCase) ? BroadcastResult.NonceError
                : message.Contains("underpriced", StringComparison.OrdinalIgnoreCase) ? BroadcastResult.Unknown // an earlier version sits in the pool
                : BroadcastResult.Refused;
        }
        catch (Exception e) when (IsRpcFailure(e, ct))
        {
            // It may or may not have reached the node: the journal keeps it and the wait loop will tell.
            _log.LogWarning(e, "broadcast of {Hash} failed in transport", tx.Hash);
            return BroadcastResult.Unknown;
        }
    }

    bool IsRpcFailure(Exception e, CancellationToken ct) => !ct.IsCancellationRequested && (L1RpcPolicy.IsTransient(e) || e is RpcResponseException);

    Task<T> Rpc<T>(Func<Task<T>> call, CancellationToken ct) => _rpc.RunAsync(call, ct);
}
