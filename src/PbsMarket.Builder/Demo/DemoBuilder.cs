using System.Collections.Concurrent;
using System.Globalization;
using PbsMarket.Core;

namespace PbsMarket.Builder.Demo;

public sealed class DemoBuilderOptions
{
    /// <summary>Name in logs; also seeds the builder's demo L2 accounts.</summary>
    public string Name { get; set; } = "builder";
    public IReadOnlyList<string> Relays { get; set; } = [];
    public string Strategy { get; set; } = "steady";
    public int MinTxs { get; set; } = 5;
    public int MaxTxs { get; set; } = 20;
    /// <summary>Check after each close that the bids are in the slot's bids root (from the data API).</summary>
    public bool VerifyInclusion { get; set; } = true;
    /// <summary>How long after the close the inclusion check runs (the relay publishes results at the close).</summary>
    public TimeSpan VerifyDelay { get; set; } = TimeSpan.FromMilliseconds(150);
    /// <summary>The L2 node's JSON-RPC: when set (with <see cref="L2SimulationRpc"/>), blocks come from its mempool and
    /// are simulated (<see cref="MempoolBlocks"/>); otherwise from the builder's own demo wallet.</summary>
    public string? L2Rpc { get; set; }
    /// <summary>The L2 node's relay port (serves <c>pbs_simulateBlock</c>).</summary>
    public string? L2SimulationRpc { get; set; }
}

public enum DemoLogLevel { Debug, Info, Warning }

/// <summary>Where a demo builder's log lines go.</summary>
public delegate void DemoLog(DemoLogLevel level, string message);

/// <summary>What a demo builder did, for summaries.</summary>
public sealed class DemoBuilderStats
{
    long _bids, _refused, _slots, _wins, _verified, _unverified;
    public long BidsAccepted => Interlocked.Read(ref _bids);
    public long BidsRefused => Interlocked.Read(ref _refused);
    public long SlotsBid => Interlocked.Read(ref _slots);
    public long Wins => Interlocked.Read(ref _wins);
    public long InclusionVerified => Interlocked.Read(ref _verified);
    public long InclusionFailed => Interlocked.Read(ref _unverified);
    public ConcurrentDictionary<string, int> RefusalCodes { get; } = new();
    internal void Bid() => Interlocked.Increment(ref _bids);
    internal void Refused(string code) { Interlocked.Increment(ref _refused); RefusalCodes.AddOrUpdate(code, 1, (_, n) => n + 1); }
    internal void Slot() => Interlocked.Increment(ref _slots);
    internal void Win() => Interlocked.Increment(ref _wins);
    internal void Verified(bool ok) { if (ok) Interlocked.Increment(ref _verified); else Interlocked.Increment(ref _unverified); }
}

/// <summary>
/// A demo builder: for every auction it sees on each of its relays it builds a block of real signed L2 transfers
/// (<see cref="L2Wallet"/>), bids for it as its <see cref="IBidStrategy"/> plans (value derived from the block's tips),
/// and after the close checks from the data API that every accepted bid is in the bids root.
/// </summary>
public sealed class DemoBuilder : IAsyncDisposable
{
    readonly DemoBuilderOptions _o;
    readonly BidSigner _signer;
    readonly IBidStrategy _strategy;
    readonly DemoLog _log;
    readonly L2Wallet _wallet;
    readonly List<BuilderClient> _clients;
    readonly ConcurrentDictionary<ulong, byte> _committed = new();
    readonly ConcurrentDictionary<ulong, byte> _counted = new();

    public DemoBuilder(DemoBuilderOptions options, ProtocolKey key, DemoLog? log = null)
    {
        _o = options;
        if (options.Relays.Count == 0) throw new ArgumentException("a demo builder needs at least one relay");
        _signer = new BidSigner(key);
        _strategy = BidStrategies.Create(options.Strategy);
        _log = log ?? ((_, _) => { });
        _wallet = new L2Wallet(options.Name);
        _clients = [.. options.Relays.Select(r => new BuilderClient(r))];
        if (!string.IsNullOrEmpty(options.L2Rpc))
        {
            if (string.IsNullOrEmpty(options.L2SimulationRpc)) throw new ArgumentException("a demo builder with an L2 RPC needs the L2 node's simulation port too");
            _mempool = new MempoolBlocks(new PbsMarket.L2.JsonRpcClient(options.L2Rpc, TimeSpan.FromSeconds(2)),
                new PbsMarket.L2.JsonRpcClient(options.L2SimulationRpc, TimeSpan.FromSeconds(2)), options.MaxTxs);
        }
    }

    readonly MempoolBlocks? _mempool;

    /// <summary>The block to offer in auction <paramref name="a"/>; null while the L2 node cannot simulate on its parent yet.</summary>
    async Task<DemoBlock?> BuildAsync(OpenAuction a, CancellationToken ct) =>
        _mempool is null ? _wallet.BlockFor(a.Slot, a.L2ChainId, _o.MinTxs, _o.MaxTxs) : await _mempool.BlockForAsync(a, _signer.Address, ct);

    public Address Address => _signer.Address;
    public string Name => _o.Name;
    public string StrategyName => _strategy.Name;
    public DemoBuilderStats Stats { get; } = new();
    public L2Wallet Wallet => _wallet;

    /// <summary>Bids on every relay until cancelled.</summary>
    public Task RunAsync(CancellationToken ct) => Task.WhenAll(_clients.Select(c => RunOnRelayAsync(c, ct)));

    async Task RunOnRelayAsync(BuilderClient client, CancellationToken ct)
    {
        ulong? last = null;
        var verifications = new List<Task>();
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var a = await client.GetAuctionAsync(ct);
                var now = NowMs;
                if (a.Slot == last || (long)a.ClosesAtMs - now < 80)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Clamp((long)a.ClosesAtMs - now + 20, 20, 100)), ct);
                    continue;
                }
                last = a.Slot;
                var receipts = await BidAsync(client, a, now, ct);
                verifications.RemoveAll(t => t.IsCompleted);
                if (receipts.Count > 0) verifications.Add(AfterCloseAsync(client, a, receipts, ct));
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is HttpRequestException or RelayRefusedException or TaskCanceledException or TimeoutException or PbsMarket.L2.JsonRpcException or InvalidDataException or FormatException or System.Text.Json.JsonException or KeyNotFoundException)
            {
                // No open auction (between the close and the next slot), or the relay is restarting.
                _log(DemoLogLevel.Debug, $"{client.BaseAddress}: {e.Message}");
                try { await Task.Delay(50, ct); } catch (OperationCanceledException) { break; }
            }
        }
        try { await Task.WhenAll(verifications); } catch (OperationCanceledException) { }
    }

    static long NowMs => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    async Task<List<(BidReceiptResponse Receipt, Header Header)>> BidAsync(BuilderClient client, OpenAuction a, long seenAtMs, CancellationToken ct)
    {
        var receipts = new List<(BidReceiptResponse, Header)>();
        DemoBlock? built;
        while ((built = await BuildAsync(a, ct)) is null)
        {
            // The L2 node has not executed the auction's parent yet (it follows the relays' heads), or is busy or slow.
            if (NowMs >= (long)a.ClosesAtMs - 100)
            {
                _log(DemoLogLevel.Info, $"slot {a.Slot}: no bid: the L2 node gave no block in time ({_mempool?.LastError ?? "no answer"})");
                return receipts;
            }
            await Task.Delay(50, ct);
            var again = await client.GetAuctionAsync(ct);
            if (again.Slot != a.Slot) return receipts;
            a = again;
        }
        var block = built;
        var plan = _strategy.Plan(seenAtMs, (long)a.ClosesAtMs, block.Tips, a.ReservePrice);
        _log(DemoLogLevel.Debug, $"slot {a.Slot}: auction seen at {seenAtMs}, closes {a.ClosesAtMs}, parent {a.ParentHash}; {plan.Count} bid(s) planned, block of {block.RawTxs.Count} txs worth {block.Tips} wei");
        BigInteger? lastValue = null;
        var planned = new Queue<PlannedBid>(plan);
        while (true)
        {
            // Next: the next planned bid, or (after the plan) a re-bid of the last value if the head moved under it.
            long atMs;
            BigInteger value;
            if (planned.TryPeek(out var next)) (atMs, value) = (next.AtMs, next.Value);
            else if (lastValue is { } lv && (long)a.ClosesAtMs - NowMs > 120) (atMs, value) = (NowMs + 100, lv);
            else break;
            var wait = atMs - NowMs;
            if (wait > 0) await Task.Delay(TimeSpan.FromMilliseconds(wait), ct);
            if (NowMs >= (long)a.ClosesAtMs - 5) break;
            var replan = planned.Count == 0;
            if (planned.Count > 0) planned.Dequeue();
            // The head can move while the auction is open (the previous slot gets proposed): bid on the current one.
            try
            {
                var fresh = await client.GetAuctionAsync(ct);
                if (fresh.Slot != a.Slot) break;
                if (fresh.ParentHash != a.ParentHash)
                {
                    _log(DemoLogLevel.Debug, $"slot {a.Slot}: head moved to {fresh.ParentHash}; bidding on it");
                    if (_mempool is not null)
                    {
                        // Another parent, another state: build and simulate again (what the last block included is gone).
                        // Until the L2 node has executed the new parent, no bid: the old block on the new parent would
                        // repeat transactions the parent already holds (and fail execution).
                        if (await BuildAsync(fresh, ct) is not { } rebuilt) continue;
                        block = rebuilt;
                    }
                    a = fresh;
                }
                else if (replan) continue; // nothing changed: the last bid stands
            }
            catch (RelayRefusedException)
            {
                break; // closed meanwhile
            }
            var bidValue = value;
            lastValue = bidValue;
            var header = a.HeaderFor(_signer.Address, block.Payload, block.GasUsed, bidValue);
            var signature = _signer.SignHeader(a.Domain, header);
            try
            {
                var receipt = await client.SubmitAsync(header, signature, block.Payload, ct);
                receipts.Add((receipt, header));
                Stats.Bid();
                _log(DemoLogLevel.Debug, $"slot {a.Slot}: bid {bidValue} wei for {block.RawTxs.Count} txs, header {receipt.HeaderHash}");
            }
            catch (RelayRefusedException e)
            {
                Stats.Refused(e.Code);
                _log(DemoLogLevel.Info, $"slot {a.Slot}: bid of {bidValue} wei refused by {client.BaseAddress.Authority}: {e.Code} {e.Detail}");
                if (e.Code is "auction_closed" or "wrong_slot" or "insufficient_collateral") break;
            }
        }
        if (receipts.Count > 0 && _counted.TryAdd(a.Slot, 0)) Stats.Slot();
        return receipts;
    }

    async Task AfterCloseAsync(BuilderClient client, OpenAuction a, List<(BidReceiptResponse Receipt, Header Header)> receipts, CancellationToken ct)
    {
        try
        {
            var wait = (long)a.ClosesAtMs - NowMs + (long)_o.VerifyDelay.TotalMilliseconds;
            if (wait > 0) await Task.Delay(TimeSpan.FromMilliseconds(wait), ct);
            if (_o.VerifyInclusion)
            {
                var ok = 0;
                foreach (var (receipt, _) in receipts)
                {
                    var included = await VerifyWithRetryAsync(client, a.Slot, receipt, ct);
                    Stats.Verified(included);
                    if (included) ok++;
                    else _log(DemoLogLevel.Warning, $"slot {a.Slot}: bid {receipt.HeaderHash} NOT in the bids root of {client.BaseAddress.Authority}");
                }
                _log(DemoLogLevel.Info, $"slot {a.Slot}: {ok}/{receipts.Count} bids verified in the bids root ({client.BaseAddress.Authority})");
            }
            using var doc = await client.GetJsonAsync($"relay/v1/data/slots/{a.Slot}", ct);
            if (doc.RootElement.TryGetProperty("winner", out var w) && w.ValueKind == System.Text.Json.JsonValueKind.Object
                && receipts.Any(r => r.Receipt.HeaderHash.ToString() == w.GetProperty("header_hash").GetString())
                && _committed.TryAdd(a.Slot, 0))
            {
                Stats.Win();
                if (_mempool is null) _wallet.Commit(a.Slot);
                _log(DemoLogLevel.Info, $"slot {a.Slot}: won at {(doc.RootElement.TryGetProperty("price", out var p) ? p.GetString() : "?")} wei");
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is HttpRequestException or RelayRefusedException or TaskCanceledException or System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException)
        {
            _log(DemoLogLevel.Warning, $"slot {a.Slot}: could not check the result on {client.BaseAddress.Authority}: {e.Message}");
        }
    }

    async Task<bool> VerifyWithRetryAsync(BuilderClient client, ulong slot, BidReceiptResponse receipt, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                if (await client.VerifyInclusionAsync(slot, receipt, ct)) return true;
            }
            catch (RelayRefusedException) when (attempt < 10)
            {
            }
            if (attempt >= 10) return false;
            await Task.Delay(100, ct); // the result may still be settling at the close
        }
    }

    public ValueTask DisposeAsync()
    {
        foreach (var c in _clients) c.Dispose();
        _mempool?.Dispose();
        return ValueTask.CompletedTask;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Name} ({_strategy.Name}, {Address})");
}
