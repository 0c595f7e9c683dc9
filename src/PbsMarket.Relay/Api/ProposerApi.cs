using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.Relay.Auctions;

namespace PbsMarket.Relay.Api;

/// <summary>The proposer API: the winning header (to the slot's proposer only), proposals, head announcements.</summary>
public static class ProposerApi
{
    public static IEndpointRouteBuilder MapProposerApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/relay/v1/proposer").WithTags("proposers");
        group.MapGet("/header/{slot}", GetHeader).WithSummary("The winning header of a closed auction; needs X-Pbs-Signature (HeaderRequest).");
        group.MapPost("/proposals", PostProposal).WithSummary("The proposer's signed choice; answers with the payload.");
        group.MapPost("/heads", PostHead).WithSummary("Announce a header proposed elsewhere so that relays agree on the head.");
        group.MapGet("/head", GetHead).WithSummary("The relay's head: the latest proposed header, with both signatures and its payload, so it can be verified.");
        return app;
    }

    static async Task<IResult> GetHeader(string slot, HttpRequest request, ProposalService proposals)
    {
        if (!Wire.TryParseUInt64(slot, out var s, out var err)) return new Rejection("malformed", $"slot: {err}").ToResult();
        var outcome = await proposals.GetHeaderAsync(s, request.Headers["X-Pbs-Signature"].FirstOrDefault());
        switch (outcome)
        {
            case ProposalService.HeaderRefused r: return r.Rejection.ToResult(r.Rejection.Code is "too_early" or "unavailable" ? 1 : null);
            case ProposalService.NoBid: return Results.NoContent();
        }
        var w = (ProposalService.WinningHeader)outcome;
        using var buffer = new MemoryStream();
        using (var j = new Utf8JsonWriter(buffer))
        {
            j.WriteStartObject();
            j.WritePropertyName("header");
            Wire.WriteHeader(j, w.Bid.Header);
            j.WriteString("header_hash", w.Bid.HeaderHash.ToString());
            j.WriteString("builder_signature", w.Bid.Signature.ToString());
            // price, bids_root, bid_count, relay_signature and (second price above the reserve) runner_up: what L1 checks
            Wire.WriteSettlementFields(j, w.Result.SettlementOf());
            // version 2: the relay the proposer's Proposal names (the AuctionResult's signer)
            if (w.Result.Relay is { } relay) j.WriteString("relay", relay.ToString());
            j.WriteEndObject();
        }
        return Results.Bytes(buffer.ToArray(), "application/json");
    }

    static async Task<IResult> PostProposal(HttpRequest request, ProposalService proposals, CancellationToken ct)
    {
        var (body, error) = await Body.ReadAsync(request, 16 * 1024, ct);
        if (error is not null) return error.ToResult();
        var outcome = await proposals.ProposeAsync(body);
        if (outcome is ProposalService.ProposeRefused r) return r.Rejection.ToResult(r.Rejection.Code is "too_early" or "unavailable" ? 1 : null);
        var payload = ((ProposalService.Payload)outcome).Bytes;
        return Results.Text(JsonSerializer.Serialize(new { payload = "0x" + Convert.ToHexStringLower(payload) }), "application/json");
    }

    static async Task<IResult> GetHead(AuctionStore store)
    {
        var head = await store.GetHeadAsync();
        using var buffer = new MemoryStream();
        using (var j = new Utf8JsonWriter(buffer))
        {
            j.WriteStartObject();
            j.WriteString("hash", head.Hash.ToString());
            j.WriteString("number", head.Number.ToString());
            j.WriteString("slot", head.Slot.ToString());
            if (head.Number > 0 && await store.GetProposedBlockAsync(head.Slot, head.Hash) is { } block)
            {
                j.WritePropertyName("header");
                j.WriteRawValue(block.HeaderJson);
                j.WriteString("builder_signature", block.BuilderSignature.ToString());
                j.WriteString("proposal_signature", block.ProposalSignature.ToString());
                j.WriteString("payload", "0x" + Convert.ToHexStringLower(block.Payload));
                // version 2: the settlement L1 needs, so that anyone can post this head
                using var settlement = JsonDocument.Parse(block.SettlementJson);
                foreach (var field in settlement.RootElement.EnumerateObject()) field.WriteTo(j);
            }
            j.WriteEndObject();
        }
        return Results.Bytes(buffer.ToArray(), "application/json");
    }

    static async Task<IResult> PostHead(HttpRequest request, ProposalService proposals, Market market, CancellationToken ct)
    {
        var (body, error) = await Body.ReadAsync(request, market.Options.MaxPayloadBytes * 2 + 64 * 1024, ct);
        if (error is not null) return error.ToResult();
        var outcome = await proposals.AnnounceAsync(body);
        if (outcome is ProposalService.AnnounceRefused r) return r.Rejection.ToResult(r.Rejection.Code is "unavailable" ? 1 : null);
        var a = (ProposalService.Announced)outcome;
        return Results.Text(JsonSerializer.Serialize(new
        {
            adopted = a.Adopted,
            head = new { hash = a.Head.Hash.ToString(), number = a.Head.Number.ToString(), slot = a.Head.Slot.ToString() },
        }), "application/json");
    }
}
