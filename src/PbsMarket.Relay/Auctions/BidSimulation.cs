using PbsMarket.Core;
using PbsMarket.L2;
using PbsMarket.Relay.Infrastructure;

namespace PbsMarket.Relay.Auctions;

/// <summary>
/// Bid simulation on the L2 node when <see cref="RelayOptions.L2Rpc"/> is set (docs/l2.md, "Bids checked by execution");
/// otherwise every bid passes this step unsimulated. Latencies go to <c>pbs_simulation_seconds</c>, held back until the slot closes.
/// </summary>
public sealed class BidSimulation : IDisposable
{
    readonly BlockSimulator? _simulator;
    readonly JsonRpcClient? _client;
    readonly RelayMetrics _metrics;

    public BidSimulation(Microsoft.Extensions.Options.IOptions<RelayOptions> options, RelayMetrics metrics)
    {
        _metrics = metrics;
        var o = options.Value;
        if (string.IsNullOrEmpty(o.L2Rpc)) return;
        _client = new JsonRpcClient(o.L2Rpc, TimeSpan.FromMilliseconds(o.L2SimulationTimeoutMs));
        _simulator = new BlockSimulator(_client);
    }

    public bool Enabled => _simulator is not null;

    public async Task<ProtocolError?> CheckAsync(Header h, byte[] payload, CancellationToken ct)
    {
        if (_simulator is null) return null;
        var verdict = await _simulator.SimulateAsync(h, payload, ct);
        var seconds = verdict.Milliseconds / 1000;
        var code = verdict.Error?.Code ?? "valid";
        _metrics.WhenClosed(h.Slot, m => m.SimulationSeconds.Record(seconds, RelayMetrics.Tag("result", code))); // sealed: held back like every bid metric
        return verdict.Error;
    }

    public void Dispose() => _client?.Dispose();
}
