using System.Collections.Concurrent;
using PbsMarket.Core;
using PbsMarket.L2;
using PbsMarket.Relay.Infrastructure;

namespace PbsMarket.Relay.Auctions;

/// <summary>
/// Bid simulation on the L2 node when <see cref="RelayOptions.L2Rpc"/> is set (docs/l2.md, "Bids checked by execution");
/// otherwise every bid passes this step unsimulated. Latencies go to <c>pbs_simulation_seconds</c>, held back until the
/// slot closes.
/// A block's execution depends only on its parent, its timestamp, its coinbase (the builder) and its payload, so the
/// verdict for those (and the claimed gas) is kept: a builder that bids the same block again at another value (every
/// strategy that raises its bid does) is not simulated again, and identical simulations running at once share one.
/// At most <see cref="MaxCached"/> verdicts are kept; "unavailable" is never kept.
/// </summary>
public sealed class BidSimulation : IDisposable
{
    public const int MaxCached = 4096;
    readonly BlockSimulator? _simulator;
    readonly JsonRpcClient? _client;
    readonly RelayMetrics _metrics;
    readonly ConcurrentDictionary<(Hash32 Parent, ulong TimestampMs, Address Builder, Hash32 PayloadHash, ulong GasUsed), Lazy<Task<SimulationVerdict>>> _verdicts = new();

    public BidSimulation(Microsoft.Extensions.Options.IOptions<RelayOptions> options, RelayMetrics metrics)
    {
        _metrics = metrics;
        var o = options.Value;
        if (string.IsNullOrEmpty(o.L2Rpc)) return;
        _client = new JsonRpcClient(o.L2Rpc, TimeSpan.FromMilliseconds(o.L2SimulationTimeoutMs));
        _simulator = new BlockSimulator(_client);
    }

    public bool Enabled => _simulator is not null;

    /// <summary>Null when bids are not simulated; else the verdict (its error null when the block executes as claimed).</summary>
    /// <remarks>The payload must be the one <paramref name="h"/>'s payload hash commits to (the caller checked it).</remarks>
    /// <param name="priority">The close: the node runs it before every other waiting use of its engine (a simulation of the
    /// same block already running is shared, whatever its priority).</param>
    public async Task<SimulationVerdict?> CheckAsync(Header h, byte[] payload, CancellationToken ct, bool priority = false)
    {
        if (_simulator is null) return null;
        var key = (h.ParentHash, h.TimestampMs, h.Builder, h.PayloadHash, h.GasUsed);
        if (_verdicts.Count >= MaxCached) _verdicts.Clear();
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var created = false;
        var entry = _verdicts.GetOrAdd(key, _ =>
        {
            created = true;
            return new Lazy<Task<SimulationVerdict>>(() => _simulator.SimulateAsync(h, payload, CancellationToken.None, priority));
        });
        // The close does not wait behind an ordinary simulation of the same block still queued on the node: it runs its own
        // in the priority lane (and its verdict replaces the queued one's place in the cache).
        if (priority && !created && !entry.Value.IsCompleted)
        {
            var own = new Lazy<Task<SimulationVerdict>>(() => _simulator.SimulateAsync(h, payload, CancellationToken.None, priority: true));
            _verdicts[key] = own;
            entry = own;
        }
        SimulationVerdict verdict;
        try
        {
            verdict = await entry.Value.WaitAsync(ct);
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            _verdicts.TryRemove(KeyValuePair.Create(key, entry));
            throw;
        }
        if (verdict.Error?.Code == "unavailable") _verdicts.TryRemove(KeyValuePair.Create(key, entry));
        var seconds = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
        var code = verdict.Error?.Code ?? "valid";
        _metrics.WhenClosed(h.Slot, m => m.SimulationSeconds.Record(seconds, RelayMetrics.Tag("result", code))); // sealed: held back like every bid metric
        return verdict;
    }

    public void Dispose() => _client?.Dispose();
}
