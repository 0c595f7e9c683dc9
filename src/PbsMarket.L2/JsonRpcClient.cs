using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PbsMarket.L2;

/// <summary>An error answered by a JSON-RPC server (not a transport failure).</summary>
public sealed class JsonRpcException(string method, int code, string message)
    : Exception($"{method}: {message} (code {code})")
{
    public string Method { get; } = method;
    public int Code { get; } = code;
    public string RpcMessage { get; } = message;
}

/// <summary>
/// A small JSON-RPC 2.0 client with a deadline on every call. Transport failures and timeouts throw
/// <see cref="HttpRequestException"/> or <see cref="TimeoutException"/>; an error answer throws <see cref="JsonRpcException"/>.
/// </summary>
public sealed class JsonRpcClient : IDisposable
{
    readonly HttpClient _http;
    readonly TimeSpan _timeout;
    long _id;

    public JsonRpcClient(string url, TimeSpan timeout)
    {
        Url = url;
        _timeout = timeout;
        _http = new HttpClient { BaseAddress = new Uri(url), Timeout = Timeout.InfiniteTimeSpan };
    }

    public string Url { get; }

    public async Task<JsonElement> CallAsync(string method, JsonArray parameters, CancellationToken ct = default)
    {
        var request = new JsonObject { ["jsonrpc"] = "2.0", ["id"] = Interlocked.Increment(ref _id), ["method"] = method, ["params"] = parameters };
        var doc = await SendAsync(request, method, ct);
        return Result(doc, method);
    }

    /// <summary>Several calls in one JSON-RPC batch; the results in the order of <paramref name="calls"/>.</summary>
    public async Task<JsonElement[]> BatchAsync(IReadOnlyList<(string Method, JsonArray Params)> calls, CancellationToken ct = default)
    {
        if (calls.Count == 0) return [];
        var batch = new JsonArray();
        var first = Interlocked.Add(ref _id, calls.Count) - calls.Count + 1;
        for (var i = 0; i < calls.Count; i++)
            batch.Add(new JsonObject { ["jsonrpc"] = "2.0", ["id"] = first + i, ["method"] = calls[i].Method, ["params"] = calls[i].Params });
        var doc = await SendAsync(batch, calls[0].Method + " (batch)", ct);
        if (doc.ValueKind != JsonValueKind.Array) return [Result(doc, calls[0].Method)];
        var results = new JsonElement[calls.Count];
        foreach (var item in doc.EnumerateArray())
        {
            var index = item.GetProperty("id").GetInt64() - first;
            if (index < 0 || index >= calls.Count) throw new InvalidDataException("JSON-RPC batch: an answer with an unknown id");
            results[index] = Result(item, calls[(int)index].Method);
        }
        return results;
    }

    async Task<JsonElement> SendAsync(JsonNode request, string what, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(_timeout);
        try
        {
            using var response = await _http.PostAsJsonAsync("", request, deadline.Token);
            response.EnsureSuccessStatusCode();
            // Call traces nest one level per call frame: a contract can nest hundreds deep.
            await using var body = await response.Content.ReadAsStreamAsync(deadline.Token);
            using var doc = await JsonDocument.ParseAsync(body, new JsonDocumentOptions { MaxDepth = 4096 }, deadline.Token);
            return doc.RootElement.Clone();
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"{what}: {Url} did not answer within {_timeout.TotalMilliseconds:0} ms");
        }
    }

    static JsonElement Result(JsonElement doc, string method)
    {
        if (doc.TryGetProperty("error", out var error))
        {
            var code = error.TryGetProperty("code", out var c) && c.TryGetInt32(out var n) ? n : 0;
            var message = error.TryGetProperty("message", out var m) ? m.GetString() ?? "" : error.ToString();
            throw new JsonRpcException(method, code, message);
        }
        return doc.GetProperty("result").Clone();
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>Quantities as JSON-RPC spells them.</summary>
public static class Quantity
{
    public static string Of(ulong v) => "0x" + v.ToString("x", System.Globalization.CultureInfo.InvariantCulture);
    public static string Of(System.Numerics.BigInteger v) => v.IsZero ? "0x0" : "0x" + v.ToString("x", System.Globalization.CultureInfo.InvariantCulture).TrimStart('0');

    public static ulong ToUInt64(JsonElement e) => Convert.ToUInt64(e.GetString(), 16);

    public static System.Numerics.BigInteger ToBig(JsonElement e)
    {
        var s = e.GetString() ?? throw new FormatException("quantity: null");
        if (!s.StartsWith("0x", StringComparison.Ordinal)) throw new FormatException($"quantity: {s}");
        return s.Length == 2 ? 0 : System.Numerics.BigInteger.Parse("0" + s[2..], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
    }
}
