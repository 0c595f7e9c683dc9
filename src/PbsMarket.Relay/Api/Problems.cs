using System.Text.Json;

namespace PbsMarket.Relay.Api;

/// <summary>
/// A refusal with a stable machine-readable code, sent as application/problem+json. Messages are
/// exact and never include a stack trace or anything about other builders' sealed bids.
/// </summary>
public sealed record Rejection(string Code, string Message)
{
    public int Status => StatusOf(Code);

    public static int StatusOf(string code) => code switch
    {
        "payload_too_large" or "unpostable" or "storage_budget" => StatusCodes.Status413PayloadTooLarge,
        "rate_limited" => StatusCodes.Status429TooManyRequests,
        "not_proposer" => StatusCodes.Status403Forbidden,
        "too_early" => 425,
        "not_found" => StatusCodes.Status404NotFound,
        "request_timeout" => StatusCodes.Status408RequestTimeout,
        "stale_parent" or "auction_closed" or "equivocation" or "too_late" or "not_winner" or "already_proposed" or "not_after_head" or "wrong_settlement" => StatusCodes.Status409Conflict,
        "insufficient_collateral" or "collateral_required" or "barred" => StatusCodes.Status402PaymentRequired,
        "unavailable" => StatusCodes.Status503ServiceUnavailable,
        "unsupported_media_type" => StatusCodes.Status415UnsupportedMediaType,
        _ => StatusCodes.Status400BadRequest,
    };

    public IResult ToResult(int? retryAfterSeconds = null) => new ProblemResult(this, retryAfterSeconds);

    sealed class ProblemResult(Rejection r, int? retryAfter) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            http.Response.StatusCode = r.Status;
            http.Response.ContentType = "application/problem+json";
            if (retryAfter is { } s) http.Response.Headers.RetryAfter = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
            http.Items["pbs.code"] = r.Code;
            await using var w = new Utf8JsonWriter(http.Response.Body);
            w.WriteStartObject();
            w.WriteString("type", $"https://pbsmarket.dev/errors/{r.Code}");
            w.WriteString("title", r.Code.Replace('_', ' '));
            w.WriteNumber("status", r.Status);
            w.WriteString("code", r.Code);
            w.WriteString("detail", r.Message);
            w.WriteEndObject();
        }
    }
}

/// <summary>Pre-serialized JSON with a status code (the hot path writes its JSON by hand).</summary>
public sealed class JsonBytesResult(byte[] json, int status = StatusCodes.Status200OK) : IResult
{
    public Task ExecuteAsync(HttpContext http)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        http.Response.ContentLength = json.Length;
        return http.Response.Body.WriteAsync(json).AsTask();
    }
}
