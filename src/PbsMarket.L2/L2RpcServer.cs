using System.Numerics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using PbsMarket.Core;

namespace PbsMarket.L2;

/// <summary>
/// The L2 JSON-RPC that users, wallets and builders talk to: the engine's read methods (under the derivation's lock, so no
/// simulated block is ever seen), <c>eth_sendRawTransaction</c> into the <see cref="Mempool"/>, and the <c>pbs_</c>
/// methods (docs/l2.md). Nothing that changes the engine is served. <c>pbs_simulateBlock</c> is served only on the
/// relay port.
/// </summary>
public sealed class L2RpcServer(Derivation derivation, Mempool mempool, BigInteger l2ChainId)
{
    public const int MaxBatch = 100;
    /// <summary>The most transactions one <c>pbs_pendingTransactions</c> answers.</summary>
    public const int MaxPending = 1000;
    public const int MaxBodyBytes = 4 << 20;

    /// <summary>JSON-RPC error codes of the pbs_ methods.</summary>
    public const int NotTip = -32010, Busy = -32011, InvalidParams = -32602, MethodNotFound = -32601, ParseError = -32700, InvalidRequest = -32600, TxRefused = -32000;

    static readonly HashSet<string> Reads =
    [
        "eth_chainId", "net_version", "net_listening", "web3_clientVersion", "eth_syncing", "eth_blockNumber", "eth_getBalance", "eth_getCode",
        "eth_getStorageAt", "eth_getBlockByNumber", "eth_getBlockByHash", "eth_getTransactionByHash", "eth_getTransactionReceipt",
        "eth_getBlockTransactionCountByNumber", "eth_getBlockTransactionCountByHash", "eth_getTransactionByBlockNumberAndIndex",
        "eth_getTransactionByBlockHashAndIndex", "eth_getBlockReceipts", "eth_call", "eth_estimateGas", "eth_gasPrice", "eth_maxPriorityFeePerGas",
        "eth_feeHistory", "eth_getLogs", "eth_createAccessList",
    ];

    public async Task HandleAsync(HttpContext ctx, bool relayPort)
    {
        JsonNode? response;
        byte[] body;
        using (var ms = new MemoryStream())
        {
            var buffer = new byte[16 * 1024];
            int n;
            while ((n = await ctx.Request.Body.ReadAsync(buffer, ctx.RequestAborted)) > 0)
            {
                if (ms.Length + n > MaxBodyBytes)
                {
                    ctx.Response.StatusCode = 413;
                    await ctx.Response.WriteAsJsonAsync(Error(null, InvalidRequest, $"request body exceeds {MaxBodyBytes} bytes"), ctx.RequestAborted);
                    return;
                }
                ms.Write(buffer, 0, n);
            }
            body = ms.ToArray();
        }
        JsonNode? request;
        try { request = JsonNode.Parse(body); }
        catch (JsonException e) { request = null; response = Error(null, ParseError, $"parse error: {e.Message}"); await WriteAsync(ctx, response); return; }
        if (request is JsonArray batch)
        {
            if (batch.Count == 0 || batch.Count > MaxBatch) { await WriteAsync(ctx, Error(null, InvalidRequest, $"a batch holds 1 to {MaxBatch} calls")); return; }
            var results = new JsonArray();
            foreach (var call in batch) results.Add(await CallAsync(call, relayPort, ctx.RequestAborted));
            response = results;
        }
        else
        {
            response = await CallAsync(request, relayPort, ctx.RequestAborted);
        }
        await WriteAsync(ctx, response);
    }

    static Task WriteAsync(HttpContext ctx, JsonNode? response)
    {
        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(response?.ToJsonString() ?? "null", ctx.RequestAborted);
    }

    static JsonObject Error(JsonNode? id, int code, string message) =>
        new() { ["jsonrpc"] = "2.0", ["id"] = id?.DeepClone(), ["error"] = new JsonObject { ["code"] = code, ["message"] = message } };

    static JsonObject Result(JsonNode? id, JsonNode? result) => new() { ["jsonrpc"] = "2.0", ["id"] = id?.DeepClone(), ["result"] = result };

    async Task<JsonNode> CallAsync(JsonNode? call, bool relayPort, CancellationToken ct)
    {
        if (call is not JsonObject o || o["method"] is not JsonValue mv || !mv.TryGetValue<string>(out var method))
            return Error(call is JsonObject x ? x["id"] : null, InvalidRequest, "invalid request: expected {jsonrpc, id, method, params}");
        var id = o["id"];
        var ps = o["params"] as JsonArray ?? [];
        try
        {
            return Result(id, await DispatchAsync(method, ps, relayPort, ct));
        }
        catch (JsonRpcException e) { return Error(id, e.Code, e.RpcMessage); }
        catch (MempoolRefusal e) { return Error(id, TxRefused, e.Message); }
        catch (L2BusyException e) { return Error(id, Busy, e.Message); }
        catch (RpcParamsException e) { return Error(id, InvalidParams, e.Message); }
        catch (Exception e) when (e is HttpRequestException or TimeoutException) { return Error(id, -32603, $"the L2 engine did not answer: {e.Message}"); }
    }

    sealed class RpcParamsException(string message) : Exception(message);

    static string Str(JsonArray ps, int i, string name) =>
        ps.Count > i && ps[i] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new RpcParamsException($"params[{i}] ({name}): expected a string");

    async Task<JsonNode?> DispatchAsync(string method, JsonArray ps, bool relayPort, CancellationToken ct)
    {
        switch (method)
        {
            case "eth_sendRawTransaction":
            {
                if (!Hex.TryDecode(Str(ps, 0, "raw transaction"), out var raw, out var error)) throw new RpcParamsException($"params[0]: {error}");
                var tx = await mempool.AddAsync(raw, l2ChainId, from => derivation.ReadAsync(async e =>
                {
                    var r = await e.Rpc.BatchAsync([("eth_getTransactionCount", [from.ToString(), "latest"]), ("eth_getBalance", [from.ToString(), "latest"])], ct);
                    return (Quantity.ToUInt64(r[0]), Quantity.ToBig(r[1]));
                }, ct));
                return tx.Hash.ToString();
            }
            case "eth_getTransactionCount" when ps.Count > 1 && ps[1] is JsonValue tag && tag.TryGetValue<string>(out var t) && t == "pending":
            {
                if (!Address.TryParse(Str(ps, 0, "address"), out var who)) throw new RpcParamsException("params[0]: not an address");
                var state = await derivation.ReadAsync(async e => Quantity.ToUInt64(await e.Rpc.CallAsync("eth_getTransactionCount", [who.ToString(), "latest"], ct)), ct);
                return Quantity.Of(mempool.PendingNonce(who, state));
            }
            case "eth_getTransactionCount":
                return await PassAsync(method, ps, ct);
            case "eth_accounts":
                return new JsonArray(); // the engine's dev accounts are not this node's to sign with
            case "pbs_pendingTransactions":
            {
                var limit = ps.Count > 0 && ps[0] is JsonValue lv && lv.TryGetValue<int>(out var l) ? Math.Clamp(l, 1, MaxPending) : MaxPending;
                var senders = mempool.Senders().ToList();
                var nonces = await NoncesAsync(senders, ct);
                var list = new JsonArray();
                foreach (var p in mempool.Executable(a => nonces.GetValueOrDefault(a), limit))
                    list.Add(new JsonObject
                    {
                        ["hash"] = p.Hash.ToString(), ["from"] = p.From.ToString(), ["nonce"] = Quantity.Of(p.Nonce), ["gas"] = Quantity.Of(p.Gas),
                        ["max_fee_per_gas"] = Quantity.Of(p.MaxFeePerGas), ["max_priority_fee_per_gas"] = Quantity.Of(p.MaxPriorityFeePerGas), ["raw"] = Hex.Encode(p.Raw),
                    });
                return list;
            }
            case "pbs_blockOfHeader":
            {
                if (!Hash32.TryParse(Str(ps, 0, "header hash"), out var h)) throw new RpcParamsException("params[0]: not a 32-byte hash");
                return derivation.ByHeaderHash(h) is { } b ? Describe(b) : null;
            }
            case "pbs_headerOfBlock":
            {
                var text = Str(ps, 0, "block number");
                if (!text.StartsWith("0x", StringComparison.Ordinal) || !ulong.TryParse(text.AsSpan(2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out var n))
                    throw new RpcParamsException("params[0]: expected a 0x-prefixed block number");
                return derivation.ByNumber(n) is { } b ? Describe(b) : null;
            }
            case "pbs_status":
                return new JsonObject { ["tip"] = Describe(derivation.Tip), ["l1"] = Describe(derivation.Confirmed), ["mempool"] = mempool.Count, ["simulations"] = derivation.SimulationsRun };
            case "pbs_simulateBlock" when relayPort:
                return await SimulateAsync(ps, ct);
            default:
                if (Reads.Contains(method)) return await PassAsync(method, ps, ct);
                throw new JsonRpcException(method, MethodNotFound, $"the method {method} does not exist or is not served by the L2 node");
        }
    }

    async Task<Dictionary<Address, ulong>> NoncesAsync(List<Address> senders, CancellationToken ct)
    {
        if (senders.Count == 0) return [];
        var results = await derivation.ReadAsync(e => e.Rpc.BatchAsync([.. senders.Select(s => ("eth_getTransactionCount", new JsonArray(s.ToString(), "latest")))], ct), ct);
        return senders.Zip(results).ToDictionary(x => x.First, x => Quantity.ToUInt64(x.Second));
    }

    public async Task PruneMempoolAsync(CancellationToken ct)
    {
        var senders = mempool.Senders().ToList();
        if (senders.Count == 0) return;
        var nonces = await NoncesAsync(senders, ct);
        mempool.Prune(a => nonces.GetValueOrDefault(a));
    }

    async Task<JsonNode?> PassAsync(string method, JsonArray ps, CancellationToken ct)
    {
        var copy = (JsonArray)ps.DeepClone();
        var result = await derivation.ReadAsync(e => e.Rpc.CallAsync(method, copy, ct), ct);
        return JsonNode.Parse(result.GetRawText());
    }

    async Task<JsonNode?> SimulateAsync(JsonArray ps, CancellationToken ct)
    {
        if (ps.Count < 1 || ps[0] is not JsonObject a) throw new RpcParamsException("params[0]: expected {parent_hash, timestamp_ms, builder, payload}");
        string Field(string name) => a[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new RpcParamsException($"params[0].{name}: expected a string");
        if (!Hash32.TryParse(Field("parent_hash"), out var parent)) throw new RpcParamsException("params[0].parent_hash: not a 32-byte hash");
        if (!ulong.TryParse(Field("timestamp_ms"), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ts)) throw new RpcParamsException("params[0].timestamp_ms: not a decimal integer");
        if (!Address.TryParse(Field("builder"), out var builder)) throw new RpcParamsException("params[0].builder: not an address");
        if (!Hex.TryDecode(Field("payload"), out var payload, out var err)) throw new RpcParamsException($"params[0].payload: {err}");
        var priority = a["priority"] is JsonValue pv && pv.TryGetValue<bool>(out var pb) && pb;
        var sim = await derivation.SimulateAsync(parent, ts, builder, payload, ct, priority);
        if (sim is null)
        {
            var tip = derivation.Tip;
            throw new JsonRpcException("pbs_simulateBlock", NotTip, $"parent {parent} is not the L2 node's tip (block {tip.Number}, header {tip.HeaderHash}, slot {tip.Slot})");
        }
        return new JsonObject
        {
            ["number"] = sim.Number.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["gas_used"] = sim.GasUsed.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["coinbase_gain"] = sim.CoinbaseGain.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["skipped"] = Skipped(sim.Skipped),
        };
    }

    static JsonArray Skipped(IReadOnlyList<SkippedTx> skipped) =>
        [.. skipped.Select(s => (JsonNode)new JsonObject { ["index"] = s.Index, ["tx_hash"] = s.TxHash?.ToString(), ["reason"] = s.Reason })];

    static JsonObject Describe(DerivedBlock b) => new()
    {
        ["number"] = Quantity.Of(b.Number), ["hash"] = b.Engine.Hash.ToString(), ["timestamp"] = Quantity.Of(b.Engine.Timestamp),
        ["state_root"] = b.Engine.StateRoot.ToString(), ["header_hash"] = b.HeaderHash.ToString(), ["slot"] = b.Slot.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["builder"] = b.Header?.Builder.ToString(), ["on_l1"] = b.OnL1, ["tx_count"] = b.Engine.Transactions.Count, ["gas_used"] = Quantity.Of(b.Engine.GasUsed),
        ["skipped"] = Skipped(b.Skipped),
    };
}
