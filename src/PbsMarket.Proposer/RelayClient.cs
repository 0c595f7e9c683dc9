using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using PbsMarket.Core;

namespace PbsMarket.Proposer;

/// <summary>What a relay answered to GET /relay/v1/proposer/header/{slot}.</summary>
internal abstract record HeaderAnswer(RelayClient Relay);
internal sealed record HeaderOffer(RelayClient Relay, Header Header, Hash32 HeaderHash, Signature BuilderSignature, Settlement Settlement) : HeaderAnswer(Relay)
{
    public BigInteger Price => Settlement.Price;
}
internal sealed record NoHeader(RelayClient Relay, string Reason) : HeaderAnswer(Relay);

/// <summary>A head a relay reports (the parent of its auction for the slot).</summary>
internal sealed record ReportedHead(RelayClient Relay, ulong AuctionSlot, Hash32 Hash, ulong Number);

/// <summary>HTTP access to one relay's proposer endpoints. Every call runs under a deadline given by the caller.</summary>
internal sealed class RelayClient : IDisposable
{
    readonly HttpClient _http;

    public RelayClient(RelayEndpointOptions options, TimeSpan connectTimeout, HttpMessageHandler? handler = null)
    {
        Name = options.DisplayName;
        Address = Core.Address.Parse(options.Address);
        _http = handler is null
            ? new HttpClient(new SocketsHttpHandler { ConnectTimeout = connectTimeout, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
            : new HttpClient(handler);
        _http.BaseAddress = new Uri(options.Url.TrimEnd('/') + "/");
        _http.Timeout = Timeout.InfiniteTimeSpan; // per-call deadlines via cancellation
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("pbs-proposer", "1"));
    }

    public string Name { get; }
    public Address Address { get; }
    public override string ToString() => Name;

    /// <summary>Asks for the slot's winning header until it comes, the relay says there is none, or the deadline passes;
    /// 425 too_early and 503 unavailable are retried every <paramref name="retryDelay"/>.</summary>
    public async Task<HeaderAnswer> GetHeaderAsync(ulong slot, Signature requestSignature, TimeSpan retryDelay, CancellationToken deadline)
    {
        string last = "no answer";
        while (!deadline.IsCancellationRequested)
        {
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"relay/v1/proposer/header/{slot.ToString(CultureInfo.InvariantCulture)}");
                request.Headers.Add("X-Pbs-Signature", requestSignature.ToString());
                using var response = await _http.SendAsync(request, deadline);
                var body = await response.Content.ReadAsByteArrayAsync(deadline);
                switch ((int)response.StatusCode)
                {
                    case 200: return ParseOffer(body) is { } offer ? offer : new NoHeader(this, "malformed header response");
                    case 204: return new NoHeader(this, "no bid");
                    case 425 or 503:
                        last = $"{(int)response.StatusCode} {Code(body)}";
                        await Task.Delay(retryDelay, deadline);
                        continue;
                    default: return new NoHeader(this, $"{(int)response.StatusCode} {Code(body)}");
                }
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested) { break; }
            catch (HttpRequestException e)
            {
                last = $"unreachable: {e.Message}";
                try { await Task.Delay(retryDelay * 4, deadline); } catch (OperationCanceledException) { break; }
            }
        }
        return new NoHeader(this, $"no header before the deadline ({last})");
    }

    HeaderOffer? ParseOffer(byte[] body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var r = doc.RootElement;
            var header = Wire.ParseHeader(r.GetProperty("header"));
            if (!header.IsOk) return null;
            if (!Hash32.TryParse(r.GetProperty("header_hash").GetString(), out var hash)) return null;
            if (!Signature.TryParse(r.GetProperty("builder_signature").GetString(), out var builderSig, out _)) return null;
            // price, bids_root, bid_count, relay_signature and the runner-up evidence: what L1 will check
            var settlement = Wire.ParseSettlementOf(r);
            if (!settlement.IsOk || settlement.Value is null) return null;
            return new HeaderOffer(this, header.Value, hash, builderSig, settlement.Value);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>The relay's head as the parent of its auction for <paramref name="slot"/> (GET /relay/v1/builder/auction), or null.</summary>
    public async Task<ReportedHead?> GetHeadAsync(ulong slot, CancellationToken deadline)
    {
        try
        {
            using var response = await _http.GetAsync("relay/v1/builder/auction", deadline);
            if (response.StatusCode != HttpStatusCode.OK) return null;
            using var doc = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(deadline));
            var r = doc.RootElement;
            if (!Wire.TryParseUInt64(r.GetProperty("slot").GetString(), out var s, out _) || s != slot) return null;
            if (!Hash32.TryParse(r.GetProperty("parent_hash").GetString(), out var parent)) return null;
            if (!Wire.TryParseUInt64(r.GetProperty("number").GetString(), out var number, out _) || number == 0) return null;
            return new ReportedHead(this, s, parent, number - 1);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>POST /relay/v1/proposer/proposals until the payload comes back or the deadline passes (the relay answers the same
    /// proposal again with the same payload, so retrying transport failures, 5xx and 425 is safe). Null + reason on failure.</summary>
    public async Task<(byte[]? Payload, string Reason)> ProposeAsync(ProposalSubmission proposal, TimeSpan retryDelay, CancellationToken deadline)
    {
        var body = Wire.ToUtf8(proposal, Wire.WriteProposalSubmission);
        string last = "no answer";
        while (!deadline.IsCancellationRequested)
        {
            try
            {
                using var content = new ByteArrayContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                using var response = await _http.PostAsync("relay/v1/proposer/proposals", content, deadline);
                var answer = await response.Content.ReadAsByteArrayAsync(deadline);
                var status = (int)response.StatusCode;
                if (status == 200)
                {
                    try
                    {
                        using var doc = JsonDocument.Parse(answer);
                        if (Hex.TryDecode(doc.RootElement.GetProperty("payload").GetString(), out var payload, out var err)) return (payload, "ok");
                        return (null, $"malformed payload: {err}");
                    }
                    catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
                    {
                        return (null, "malformed proposal response");
                    }
                }
                last = $"{status} {Code(answer)}";
                if (status != 425 && status < 500) return (null, last);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested) { break; }
            catch (HttpRequestException e) { last = $"unreachable: {e.Message}"; }
            try { await Task.Delay(retryDelay, deadline); } catch (OperationCanceledException) { break; }
        }
        return (null, $"no payload before the deadline ({last})");
    }

    /// <summary>POST /relay/v1/proposer/heads once; returns (adopted, relay head) or an error text.</summary>
    public async Task<(bool Ok, bool Adopted, string Detail)> AnnounceAsync(HeadAnnouncement announcement, CancellationToken deadline)
    {
        try
        {
            using var content = new ByteArrayContent(Wire.ToUtf8(announcement, Wire.WriteHeadAnnouncement));
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var response = await _http.PostAsync("relay/v1/proposer/heads", content, deadline);
            var answer = await response.Content.ReadAsByteArrayAsync(deadline);
            if (response.StatusCode != HttpStatusCode.OK) return (false, false, $"{(int)response.StatusCode} {Code(answer)}");
            using var doc = JsonDocument.Parse(answer);
            var adopted = doc.RootElement.TryGetProperty("adopted", out var a) && a.ValueKind == JsonValueKind.True;
            var head = doc.RootElement.TryGetProperty("head", out var h) && h.TryGetProperty("hash", out var hh) ? hh.GetString() : "?";
            return (true, adopted, $"head {head}");
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or JsonException)
        {
            return (false, false, e is OperationCanceledException ? "timed out" : e.Message);
        }
    }

    static string Code(byte[] body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            return doc.RootElement.TryGetProperty("code", out var c) ? c.GetString() ?? "" : "";
        }
        catch (JsonException) { return ""; }
    }

    public void Dispose() => _http.Dispose();
}
