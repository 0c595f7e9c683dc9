using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using PbsMarket.Core;
using Polly;
using Polly.Retry;

namespace PbsMarket.Builder;

/// <summary>A refusal from the relay, with its stable code.</summary>
public sealed class RelayRefusedException(int status, string code, string detail)
    : Exception($"{status} {code}: {detail}")
{
    public int Status { get; } = status;
    public string Code { get; } = code;
    public string Detail { get; } = detail;
}

/// <summary>
/// HTTP client for one relay's builder and data APIs. Every call has a timeout; transient failures
/// (connection errors, 503) are retried a few times with short backoff; refusals are not retried.
/// </summary>
public sealed class BuilderClient : IDisposable
{
    readonly HttpClient _http;
    readonly ResiliencePipeline _retry;

    public BuilderClient(string relayUrl, TimeSpan? timeout = null, HttpMessageHandler? handler = null)
    {
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.BaseAddress = new Uri(relayUrl.TrimEnd('/') + "/");
        _http.Timeout = timeout ?? TimeSpan.FromSeconds(5);
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("pbs-builder-sdk", "1"));
        _retry = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = 2,
                Delay = TimeSpan.FromMilliseconds(50),
                BackoffType = DelayBackoffType.Exponential,
                ShouldHandle = new PredicateBuilder()
                    .Handle<HttpRequestException>()
                    .Handle<RelayRefusedException>(e => e.Status == 503),
            })
            .Build();
    }

    public Uri BaseAddress => _http.BaseAddress!;

    public async Task<OpenAuction> GetAuctionAsync(CancellationToken ct = default)
    {
        using var doc = await GetJsonAsync("relay/v1/builder/auction", ct);
        return OpenAuction.Parse(doc.RootElement);
    }

    /// <summary>Submits a signed bid; returns the relay's receipt (verified against <paramref name="relay"/> when given).</summary>
    public async Task<BidReceiptResponse> SubmitAsync(Header header, Signature signature, byte[] payload, CancellationToken ct = default)
    {
        var body = Wire.ToUtf8(new BidSubmission(header, signature, payload), Wire.WriteBidSubmission);
        return await _retry.ExecuteAsync(async token =>
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var response = await _http.PostAsync("relay/v1/builder/bids", content, token);
            var bytes = await response.Content.ReadAsByteArrayAsync(token);
            if (response.StatusCode != HttpStatusCode.Accepted) throw Refusal(response, bytes);
            var parsed = Wire.ParseBidReceiptResponse(bytes);
            return parsed.IsOk ? parsed.Value : throw new InvalidDataException($"unreadable receipt: {parsed.Error}");
        }, ct);
    }

    /// <summary>Sends an already-encoded body (for tests of malformed input and for benchmarks).</summary>
    public async Task<(int Status, string Body)> PostRawAsync(string path, byte[] body, string contentType = "application/json", CancellationToken ct = default)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        using var response = await _http.PostAsync(path.TrimStart('/'), content, ct);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(ct));
    }

    public async Task<JsonDocument> GetJsonAsync(string path, CancellationToken ct = default) =>
        await _retry.ExecuteAsync(async token =>
        {
            using var response = await _http.GetAsync(path.TrimStart('/'), token);
            var bytes = await response.Content.ReadAsByteArrayAsync(token);
            if (!response.IsSuccessStatusCode) throw Refusal(response, bytes);
            return JsonDocument.Parse(bytes);
        }, ct);

    /// <summary>
    /// After the close: checks from the data API that the bid of <paramref name="receipt"/> is in the
    /// slot's bids root, recomputing the root from the revealed bids and checking the relay's proof.
    /// </summary>
    public async Task<bool> VerifyInclusionAsync(ulong slot, BidReceiptResponse receipt, CancellationToken ct = default)
    {
        using var slotDoc = await GetJsonAsync($"relay/v1/data/slots/{slot}", ct);
        var s = slotDoc.RootElement;
        if (!s.TryGetProperty("bids_root", out var rootElement)) return false;
        var root = Hash32.Parse(rootElement.GetString()!);
        var leaves = s.GetProperty("bids").EnumerateArray()
            .Select(b => (Hash32.Parse(b.GetProperty("header_hash").GetString()!), ulong.Parse(b.GetProperty("received_at_ms").GetString()!, System.Globalization.CultureInfo.InvariantCulture)))
            .ToList();
        if (BidsMerkle.Root(leaves) != root) return false;
        using var proofDoc = await GetJsonAsync($"relay/v1/data/slots/{slot}/proof/{receipt.HeaderHash}", ct);
        var proof = proofDoc.RootElement.GetProperty("proof").EnumerateArray().Select(p => Hash32.Parse(p.GetString()!)).ToList();
        return BidsMerkle.Verify(root, receipt.HeaderHash, receipt.ReceivedAtMs, proof);
    }

    static RelayRefusedException Refusal(HttpResponseMessage response, byte[] body)
    {
        string code = "http_" + (int)response.StatusCode, detail = "";
        try
        {
            using var doc = JsonDocument.Parse(body);
            code = doc.RootElement.GetProperty("code").GetString() ?? code;
            detail = doc.RootElement.TryGetProperty("detail", out var d) ? d.GetString() ?? "" : "";
        }
        catch (JsonException)
        {
            detail = System.Text.Encoding.UTF8.GetString(body);
        }
        catch (KeyNotFoundException)
        {
        }
        return new RelayRefusedException((int)response.StatusCode, code, detail);
    }

    public void Dispose() => _http.Dispose();
}
