using System.Text.Json;
using System.Text.Json.Nodes;
using PbsMarket.Core;
using PbsMarket.L2;

namespace PbsMarket.Builder.Demo;

/// <summary>
/// Blocks from the L2 node's mempool (docs/l2.md): the waiting transactions a builder can include on the tip
/// (<c>pbs_pendingTransactions</c>), simulated on the auction's parent with <c>pbs_simulateBlock</c> (on the node's relay
/// port: a builder runs or trusts an L2 node of its own), the transactions that cannot execute dropped, and the block's
/// real gas and fees (what the builder as coinbase earns) taken from the simulation.
/// </summary>
public sealed class MempoolBlocks(JsonRpcClient publicRpc, JsonRpcClient simulationRpc, int maxTxs) : IDisposable
{
    /// <summary>The block for the auction, or null while the L2 node has not executed the auction's parent, is busy, or does
    /// not answer in time (a loaded node must not end the builder: it tries again while the auction is open).</summary>
    public async Task<DemoBlock?> BlockForAsync(OpenAuction a, Address builder, CancellationToken ct)
    {
        try
        {
            return await BuildAsync(a, builder, ct);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is TimeoutException or HttpRequestException or JsonRpcException or InvalidDataException or FormatException or JsonException or KeyNotFoundException)
        {
            LastError = e.Message;
            return null;
        }
    }

    /// <summary>Why the last <see cref="BlockForAsync"/> gave no block, for the log.</summary>
    public string? LastError { get; private set; }

    async Task<DemoBlock?> BuildAsync(OpenAuction a, Address builder, CancellationToken ct)
    {
        var pending = await publicRpc.CallAsync("pbs_pendingTransactions", [maxTxs], ct);
        var raws = pending.EnumerateArray().Select(t => Hex.Decode(t.GetProperty("raw").GetString()!)).ToList();
        for (var round = 0; ; round++)
        {
            var payload = PayloadCodec.Encode(raws);
            JsonElement sim;
            try
            {
                sim = await simulationRpc.CallAsync("pbs_simulateBlock", [new JsonObject
                {
                    ["parent_hash"] = a.ParentHash.ToString(),
                    ["timestamp_ms"] = a.TimestampMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["builder"] = builder.ToString(),
                    ["payload"] = Hex.Encode(payload),
                }], ct);
            }
            catch (JsonRpcException e) when (e.Code is L2RpcServer.NotTip or L2RpcServer.Busy)
            {
                LastError = e.RpcMessage;
                return null;
            }
            var skipped = sim.GetProperty("skipped").EnumerateArray().Select(s => s.GetProperty("index").GetInt32()).ToHashSet();
            if (skipped.Count == 0 || round >= 3)
            {
                if (skipped.Count > 0) { raws = []; continue; } // give up on this mempool view: the empty block
                var gas = ulong.Parse(sim.GetProperty("gas_used").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
                var fees = BigInteger.Parse(sim.GetProperty("coinbase_gain").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
                return new DemoBlock(a.Slot, raws, payload, gas, BigInteger.Max(fees, 0), []);
            }
            raws = [.. raws.Where((_, i) => !skipped.Contains(i))];
        }
    }

    public void Dispose()
    {
        publicRpc.Dispose();
        simulationRpc.Dispose();
    }
}
