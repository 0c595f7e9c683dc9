using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.Relay.Archive;
using PbsMarket.Relay.Auctions;
using PbsMarket.Relay.Chain;
using PbsMarket.Relay.Infrastructure;

namespace PbsMarket.Relay.Api;

/// <summary>The public data API and event stream. Nothing here reveals an open auction's bids.</summary>
public static class DataApi
{
    public const int MaxLimit = 200;

    public static IEndpointRouteBuilder MapDataApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/relay/v1/data").WithTags("data").RequireRateLimiting(Limits.DataPolicy);
        group.MapGet("/slots", ListSlots).WithSummary("Slots, newest first, with cursor pagination (limit <= 200).");
        group.MapGet("/slots/{slot}", GetSlot).WithSummary("One slot; bids and result once its auction closed.");
        group.MapGet("/slots/{slot}/proof/{headerHash}", GetProof).WithSummary("Merkle proof of one bid in the slot's bids root.");
        group.MapGet("/builders", Builders).WithSummary("Builder standings.");
        group.MapGet("/demotions", Demotions).WithSummary("Builders demoted because an optimistic bid's block failed execution (closed slots only).");
        group.MapGet("/proposers", Proposers).WithSummary("The proposer rotation for the coming slots and each proposer's record.");
        group.MapGet("/stream", Stream).WithoutRateLimit().WithSummary("Server-sent events as slots open, close, are proposed, posted or missed.");
        return app;
    }

    static IResult Json(object value) => Results.Text(JsonSerializer.Serialize(value, value.GetType(), WireJson.Options), "application/json");

    static async Task<IResult> ListSlots(string? limit, string? cursor, SlotReader reader, Market market, CancellationToken ct)
    {
        var n = 20;
        if (limit is not null)
        {
            if (!Wire.TryParseUInt64(limit, out var l, out var lerr)) return new Rejection("malformed", $"limit: {lerr}").ToResult();
            if (l < 1 || l > MaxLimit) return new Rejection("out_of_range", $"limit {l} is not from 1 to {MaxLimit}").ToResult();
            n = (int)l;
        }
        // The newest slot that can exist is the open auction's; a cursor beyond it is clamped there, so
        // a huge cursor costs what the first page costs (it used to walk every slot number down to the present).
        var newest = market.Clock.SlotAt(market.Clock.NowMs) + 2; // includes the open auction
        var before = newest;
        if (cursor is not null)
        {
            if (!Wire.TryParseUInt64(cursor, out var c, out var err)) return new Rejection("malformed", $"cursor: {err}").ToResult();
            before = Math.Min(c, newest);
        }
        var (slots, next) = await reader.ListAsync(before, n, ct);
        // {slots, next_cursor}, each slot from SlotReader.Serialized (large ones are cached bytes).
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteStartArray("slots");
            foreach (var slot in slots) w.WriteRawValue(reader.Serialized(slot), skipInputValidation: true);
            w.WriteEndArray();
            if (next is { } c) w.WriteString("next_cursor", c.ToString(System.Globalization.CultureInfo.InvariantCulture)); // absent on the last page
            w.WriteEndObject();
        }
        return Results.Bytes(buffer.ToArray(), "application/json");
    }

    static async Task<IResult> GetSlot(string slot, SlotReader reader, Market market, CancellationToken ct)
    {
        if (ParseSlot(slot, market) is { } bad) return bad.ToResult();
        var s = ulong.Parse(slot, System.Globalization.CultureInfo.InvariantCulture);
        var json = await reader.GetJsonAsync(s, ct);
        return json is null ? new Rejection("not_found", $"slot {s} has no auction on this relay").ToResult() : Results.Bytes(json, "application/json");
    }

    /// <summary>A slot path parameter: decimal uint64 (<c>malformed</c>) within the market's range (<c>out_of_range</c>).</summary>
    internal static Rejection? ParseSlot(string slot, Market market)
    {
        if (!Wire.TryParseUInt64(slot, out var s, out var err)) return new Rejection("malformed", $"slot: {err}");
        return market.Clock.CheckSlot(s) is { } range ? new Rejection(range.Code, range.Message) : null;
    }

    static async Task<IResult> GetProof(string slot, string headerHash, SlotReader reader, Market market, CancellationToken ct)
    {
        if (ParseSlot(slot, market) is { } bad) return bad.ToResult();
        var s = ulong.Parse(slot, System.Globalization.CultureInfo.InvariantCulture);
        if (!Hash32.TryParse(headerHash, out var hash)) return new Rejection("malformed", "header_hash: expected 0x and 64 hex digits").ToResult();
        var view = await reader.GetAsync(s, ct);
        if (view is not SlotView closed || closed.Bids is null)
            return new Rejection("not_found", $"slot {s} has no closed auction on this relay").ToResult();
        var leaves = closed.Bids.Select(b => (b.HeaderHash, b.ReceivedAtMs)).ToList();
        var bid = closed.Bids.FirstOrDefault(b => b.HeaderHash == hash);
        if (bid is null) return new Rejection("not_found", $"no bid {hash} in slot {s}").ToResult();
        var proof = BidsMerkle.Proof(leaves, hash, bid.ReceivedAtMs)!;
        return Json(new ProofView(s, hash, bid.ReceivedAtMs, BidsMerkle.LeafHash(hash, bid.ReceivedAtMs), closed.BidsRoot!.Value, proof));
    }

    static async Task<IResult> Builders(SlotReader reader, CancellationToken ct) => Json(new { builders = await reader.BuildersAsync(ct) });

    /// <summary>Each demoted builder's latest failure, once the failed bid's auction has closed (sealed until then).</summary>
    static async Task<IResult> Demotions(SimulationVerdicts verdicts, Market market)
    {
        var now = market.Clock.NowMs;
        var current = market.Clock.CurrentSlot;
        var shown = (await verdicts.DemotionsAsync()).Where(d => market.Clock.AuctionClosesMs(d.Slot) <= now).Select(d => new
        {
            builder = d.Builder.ToString(),
            slot = d.Slot.ToString(System.Globalization.CultureInfo.InvariantCulture),
            header_hash = d.HeaderHash.ToString(),
            code = d.Code,
            message = d.Message,
            at_ms = d.AtMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
            until_slot = d.UntilSlot.ToString(System.Globalization.CultureInfo.InvariantCulture),
            active = d.UntilSlot >= current,
        });
        return Json(new { mode = verdicts.Enabled ? market.Options.Simulation : "off", demotions = shown.ToList() });
    }

    static async Task<IResult> Proposers(SlotReader reader, Market market, IChainView chain, CancellationToken ct)
    {
        var records = await reader.ProposerRecordsAsync(ct);
        var current = market.Clock.CurrentSlot;
        var rotation = new List<object>();
        for (var s = current; s < current + 16; s++)
            rotation.Add(new { slot = s.ToString(), proposer = market.ProposerOf(s, chain)?.ToString(), starts_at_ms = market.Clock.StartMs(s).ToString() });
        var set = chain.ProposerSet(market.EpochOf(current)) ?? [];
        var proposers = set.Distinct().Select(p => new
        {
            proposer = p.ToString(),
            record = records.GetValueOrDefault(p) ?? new ProposerRecord(0, 0, 0, 0, 0),
        });
        return Json(new { epoch = market.EpochOf(current).ToString(), rotation, proposers });
    }

    static async Task Stream(HttpContext http, EventHub hub, Market market, IHostApplicationLifetime lifetime)
    {
        // Ends when the client goes or the relay stops (an open stream must not hold up shutdown).
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping);
        var ct = linked.Token;
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        using var sub = hub.Subscribe();
        // First event: where the market is, so a (re)connecting client can catch up with the data API.
        await http.Response.WriteAsync($"retry: 2000\nevent: hello\ndata: {{\"slot\":\"{market.Clock.CurrentSlot}\",\"now_ms\":\"{market.Clock.NowMs}\",\"slot_ms\":\"{market.Options.SlotMs}\",\"genesis_ms\":\"{market.Options.GenesisMs}\",\"close_offset_ms\":\"{market.Options.CloseOffsetMs}\"}}\n\n", ct);
        await http.Response.Body.FlushAsync(ct);
        using var heartbeat = new PeriodicTimer(TimeSpan.FromSeconds(market.Options.StreamHeartbeatSeconds));
        var tick = heartbeat.WaitForNextTickAsync(ct).AsTask();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var read = sub.Reader.WaitToReadAsync(ct).AsTask();
                var done = await Task.WhenAny(read, tick);
                if (done == tick)
                {
                    await http.Response.WriteAsync(": keep-alive\n\n", ct);
                    tick = heartbeat.WaitForNextTickAsync(ct).AsTask();
                }
                else if (!await read)
                {
                    break;
                }
                while (sub.Reader.TryRead(out var json))
                {
                    using var doc = JsonDocument.Parse(json);
                    var type = doc.RootElement.GetProperty("type").GetString();
                    await http.Response.WriteAsync($"event: {type}\ndata: {json}\n\n", ct);
                }
                await http.Response.Body.FlushAsync(ct);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
