using System.Text.Json;
using System.Text.Json.Nodes;
using PbsMarket.Core;

namespace PbsMarket.L2;

/// <summary>What simulating a bid's block showed: null error when every transaction executes and the gas is right.</summary>
public sealed record SimulationVerdict(ProtocolError? Error, ulong GasUsed, System.Numerics.BigInteger CoinbaseGain, double Milliseconds);

/// <summary>
/// The relay's side of bid simulation: <c>pbs_simulateBlock</c> on the L2 node's relay port executes the block on the
/// node's tip exactly as the derivation would and rolls it back (docs/l2.md). A bid's block is valid when no transaction
/// of it is skipped and its header's <c>gas_used</c> is the gas the block really used. Codes: <c>invalid_nonce</c>,
/// <c>insufficient_funds</c>, <c>simulation_failed</c> (any other transaction that cannot execute), <c>wrong_gas_used</c>;
/// <c>unavailable</c> when the node cannot answer now (not at the bid's parent yet, busy, down).
/// </summary>
public sealed class BlockSimulator(JsonRpcClient l2node)
{
    public string Url => l2node.Url;

    /// <param name="priority">Ahead of every other use of the node's engine (a relay's close; docs/l2.md).</param>
    public async Task<SimulationVerdict> SimulateAsync(Header h, byte[] payload, CancellationToken ct, bool priority = false)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        double Ms() => System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        JsonElement r;
        try
        {
            r = await l2node.CallAsync("pbs_simulateBlock", [new JsonObject
            {
                ["parent_hash"] = h.ParentHash.ToString(),
                ["timestamp_ms"] = h.TimestampMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["builder"] = h.Builder.ToString(),
                ["payload"] = Hex.Encode(payload),
                ["priority"] = priority,
            }], ct);
        }
        catch (JsonRpcException e) when (e.Code is L2RpcServer.NotTip or L2RpcServer.Busy)
        {
            return new(new ProtocolError("unavailable", $"the L2 node cannot simulate the block now ({e.RpcMessage}); retry shortly"), 0, 0, Ms());
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutException or JsonRpcException)
        {
            return new(new ProtocolError("unavailable", $"the L2 node did not simulate the block: {e.Message}; retry shortly"), 0, 0, Ms());
        }
        var gas = ulong.Parse(r.GetProperty("gas_used").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        var gain = System.Numerics.BigInteger.Parse(r.GetProperty("coinbase_gain").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        foreach (var s in r.GetProperty("skipped").EnumerateArray())
        {
            var index = s.GetProperty("index").GetInt32();
            var hash = s.GetProperty("tx_hash").ValueKind == JsonValueKind.String ? s.GetProperty("tx_hash").GetString() : null;
            var reason = s.GetProperty("reason").GetString() ?? "";
            var code = reason.Contains("nonce", StringComparison.OrdinalIgnoreCase) ? "invalid_nonce"
                : reason.Contains("insufficient funds", StringComparison.OrdinalIgnoreCase) ? "insufficient_funds"
                : "simulation_failed";
            return new(new ProtocolError(code, $"transaction {index}{(hash is null ? "" : $" ({hash})")} cannot execute on the parent: {reason}"), gas, gain, Ms());
        }
        if (gas != h.GasUsed) return new(new ProtocolError("wrong_gas_used", $"the block uses {gas} gas, but gas_used is {h.GasUsed}"), gas, gain, Ms());
        return new(null, gas, gain, Ms());
    }
}
