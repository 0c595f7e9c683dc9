using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.Relay.Auctions;

namespace PbsMarket.Relay.Api;

/// <summary>The builder API: the open auction's parameters, and bid submission.</summary>
public static class BuilderApi
{
    public static IEndpointRouteBuilder MapBuilderApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/relay/v1/builder").WithTags("builders");
        group.MapGet("/auction", GetAuction).WithSummary("The open auction: slot, head, proposer, close time, rules and EIP-712 domain.");
        group.MapPost("/bids", PostBid).WithSummary("Submit a signed bid; answers 202 with the relay's signed receipt.");
        return app;
    }

    static async Task<IResult> GetAuction(Market market, AuctionStore store, Chain.IChainView chain)
    {
        var clock = market.Clock;
        var now = clock.NowMs;
        var slot = clock.OpenAuctionSlot(now) ?? clock.SlotAt(now) + 1;
        var auction = await store.GetAuctionAsync(slot);
        if (auction is null)
            return new Rejection("unavailable", $"the auction for slot {slot} is not open yet on this relay ({market.NoProposerReason(slot, chain)})").ToResult(retryAfterSeconds: 1);
        if (market.ProposerGone(slot, auction.Proposer, chain) is { } gone) return gone.ToResult(retryAfterSeconds: 1);
        var o = market.Options;
        return Results.Text(JsonSerializer.Serialize(new
        {
            slot = slot.ToString(),
            parent_hash = auction.Parent.ToString(),
            number = auction.Number.ToString(),
            timestamp_ms = auction.TimestampMs.ToString(),
            proposer = auction.Proposer.ToString(),
            gas_limit = o.MaxGasLimit.ToString(),
            opens_at_ms = clock.AuctionOpensMs(slot).ToString(),
            closes_at_ms = auction.ClosesAtMs.ToString(),
            reserve_price = market.Reserve.ToString(),
            price_rule = market.PriceRule.ToWire(),
            l2_chain_id = market.L2ChainId.ToString(),
            max_payload_bytes = o.MaxPayloadBytes.ToString(),
            domain = new
            {
                name = market.Domain.Name,
                version = market.Domain.Version,
                chain_id = market.Domain.ChainId.ToString(),
                verifying_contract = market.Domain.VerifyingContract.ToString(),
            },
        }), "application/json");
    }

    static async Task<IResult> PostBid(HttpRequest request, BidService bids, Market market, CancellationToken ct)
    {
        var (body, error) = await Body.ReadAsync(request, market.Options.MaxPayloadBytes * 2 + 64 * 1024, ct);
        if (error is not null) return error.ToResult();
        var outcome = await bids.SubmitAsync(body, ct);
        if (outcome is BidService.Refused r)
            return r.Rejection.ToResult(r.Rejection.Code is "unavailable" or "rate_limited" ? 1 : null);
        var receipt = (BidService.Receipt)outcome;
        var json = Wire.ToUtf8(new BidReceiptResponse(receipt.HeaderHash, receipt.ReceivedAtMs, receipt.RelaySignature), Wire.WriteBidReceiptResponse);
        return new JsonBytesResult(json, StatusCodes.Status202Accepted);
    }
}
