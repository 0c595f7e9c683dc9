using System.Diagnostics;
using PbsMarket.Core;
using PbsMarket.Relay.Api;
using PbsMarket.Relay.Chain;
using PbsMarket.Relay.Infrastructure;
using StackExchange.Redis;

namespace PbsMarket.Relay.Auctions;

/// <summary>
/// Checks a builder's bid, cheapest check first, each refusal with its own code, and accepts it in
/// one atomic Redis step. A refused bid changes nothing; the same bid sent twice gets the same receipt.
/// </summary>
public sealed class BidService(AuctionStore store, Market market, IChainView chain, RelayKey key, ResultService results, DebtLedger ledger,
    RelayMetrics metrics, BuilderRateLimiter limiter, BidSimulation simulation, SimulationVerdicts verdicts, SimulationPrefetcher prefetcher)
{
    public abstract record Outcome;
    public sealed record Receipt(Hash32 HeaderHash, ulong ReceivedAtMs, Signature RelaySignature, bool Duplicate) : Outcome;
    public sealed record Refused(Rejection Rejection) : Outcome;

    readonly WireLimits _wireLimits = new(market.Options.MaxPayloadBytes);
    readonly PayloadLimits _payloadLimits = new(market.Options.MaxPayloadBytes, market.Options.MaxTxsPerBlock);
    readonly BigInteger _minFree = market.Options.MinFreeCollateralWei;

    public async Task<Outcome> SubmitAsync(ReadOnlyMemory<byte> body, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var (outcome, slot) = await CheckAndAcceptAsync(body, ct);
        var code = outcome is Refused r ? r.Rejection.Code : "accepted";
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        // Sealed bids: counts and latencies are published once the slot's auction has closed.
        var current = market.Clock.CurrentSlot;
        var sealedSlot = slot is { } s && s <= current + 2 && s + 2 >= current ? s : current + 1; // bounded: no unbounded per-slot buffers
        metrics.WhenClosed(sealedSlot, m =>
        {
            m.Bids.Add(1, RelayMetrics.Tag("result", code));
            m.BidSeconds.Record(seconds);
        });
        return outcome;
    }

    static Refused No(string code, string message) => new(new Rejection(code, message));

    async Task<(Outcome, ulong?)> CheckAndAcceptAsync(ReadOnlyMemory<byte> body, CancellationToken ct)
    {
        // 1. shape and formats
        var parsed = Wire.ParseBidSubmission(body.Span, _wireLimits);
        if (!parsed.TryGet(out var bid, out var error)) return (No(error.Code, error.Message), null);
        return (await CheckAndAcceptAsync(bid, ct), bid.Header.Slot);
    }

    async Task<Outcome> CheckAndAcceptAsync(BidSubmission bid, CancellationToken ct)
    {
        var h = bid.Header;
        var clock = market.Clock;

        // 2. the slot: within the market's range, its auction open now (on this instance's clock; Redis decides at the edge)
        if (clock.CheckSlot(h.Slot, "header.slot") is { } range) return No(range.Code, range.Message);
        var now = clock.NowMs;
        if (now >= clock.AuctionClosesMs(h.Slot))
            return No("auction_closed", $"the auction for slot {h.Slot} closed at {clock.AuctionClosesMs(h.Slot)} (now {now})");
        if (now < clock.AuctionOpensMs(h.Slot))
            return No("wrong_slot", $"the auction for slot {h.Slot} opens at {clock.AuctionOpensMs(h.Slot)}; the open auction is slot {clock.OpenAuctionSlot(now)?.ToString() ?? "none"}");
        if (h.TimestampMs != clock.StartMs(h.Slot))
            return No("wrong_timestamp", $"timestamp_ms {h.TimestampMs} is not the start of slot {h.Slot} ({clock.StartMs(h.Slot)})");

        // 3. the auction's state: head, number, proposer (re-checked atomically on accept)
        var auction = await store.GetAuctionAsync(h.Slot);
        if (auction is null) return No("unavailable", $"the auction for slot {h.Slot} is not open yet on this relay ({market.NoProposerReason(h.Slot, chain)}); retry shortly");
        if (!auction.IsOpen) return No("auction_closed", $"the auction for slot {h.Slot} is closed");
        if (HeadRules.CheckParent(auction.Parent, auction.Number - 1, h.Number, h.ParentHash) is { } stale) return No(stale.Code, stale.Message);
        if (h.Proposer != auction.Proposer) return No("wrong_proposer", $"proposer {h.Proposer} is not slot {h.Slot}'s proposer {auction.Proposer}");
        if (market.ProposerGone(h.Slot, auction.Proposer, chain) is { } gone) return new Refused(gone);

        // 4. header fields that need no payload
        if (h.L2ChainId != market.L2ChainId) return No("wrong_chain_id", $"l2_chain_id {h.L2ChainId} is not {market.L2ChainId}");
        if (GasCheck.CheckLimits(h.GasUsed, h.GasLimit, (ulong)market.Options.MaxGasLimit) is { } gasError) return No(gasError.Code, gasError.Message);
        if (h.Value < market.Reserve) return No("below_reserve", $"value {h.Value} is below the reserve price {market.Reserve}");

        // 5. signature, then collateral: an unsigned or unfunded bid costs no payload hashing or decoding
        var headerHash = Eip712.HashStruct(h);
        if (!SignatureRecovery.TryRecover(Eip712.Digest(market.Domain, headerHash), bid.Signature, out var signer))
            return No("invalid_signature", "the signature does not recover to any address");
        if (signer != h.Builder) return No("invalid_signature", $"the signature is by {signer}, not the builder {h.Builder}");
        if (limiter.TryAcquire(h.Builder) is { } limited) return new Refused(limited.Rejection);
        // The builder's debts, once the previous slots' winners are booked (else the same collateral could win twice);
        // after the signature and the limiter, so that only signed, in-rate bids can make the relay close auctions.
        if (!await results.EnsurePreviousBookedAsync(h.Slot))
            return No("unavailable", $"the auction for slot {h.Slot - 1} is still closing on this relay; retry shortly");
        var (owed, _, finalBlock) = await ledger.OwedInSlotAsync(h.Slot, h.Builder);
        var (collateral, barred) = await chain.CollateralAsync(h.Builder, finalBlock, ct);
        if (barred) return No("barred", $"builder {h.Builder} owes a shortfall on L1 and may not bid until it pays it");
        var free = collateral - owed;
        if (free < _minFree)
            return No("collateral_required", $"builder {h.Builder} has {BigInteger.Max(free, 0)} wei of free collateral (escrow {collateral}, owed {owed}); bidding needs at least {_minFree}");
        if (h.Value > free)
            return No("insufficient_collateral", $"value {h.Value} exceeds the builder's free collateral {BigInteger.Max(free, 0)} (escrow {collateral}, owed {owed})");
        // What a proposer could steal from a block is bounded by its bond (docs/settlement.md, "Unbundling").
        if (chain.ProposerStanding(h.Proposer) is { } standing && h.Value > standing.Bond)
            return No("above_proposer_bond", $"value {h.Value} exceeds the bond {standing.Bond} of slot {h.Slot}'s proposer");

        // 6. the payload: hash, then decode
        if (L1Limits.CheckPostable(bid.Payload.Length) is { } postable) return No(postable.Code, postable.Message);
        if (Keccak.Hash(bid.Payload) != h.PayloadHash)
            return No("payload_mismatch", $"keccak256(payload) {Keccak.Hash(bid.Payload)} is not payload_hash {h.PayloadHash}");
        var decoded = PayloadCodec.Decode(bid.Payload, market.L2ChainId, _payloadLimits);
        if (!decoded.IsOk) return No(decoded.Error.Code, decoded.Error.Message);
        if (GasCheck.CheckAgainstTransactions(h.GasUsed, decoded.Transactions) is { } txGasError) return No(txGasError.Code, txGasError.Message);

        // 6b. execution: the block runs on the L2 node at its parent, every transaction valid, gas_used exact (last: the dearest
        // check). Optimistic: a builder in good standing, whose value step 5 bounded by its free collateral, is simulated after
        // its receipt (during the auction, and at the latest at the close, before any header is served); a demoted one now.
        var optimistic = verdicts.MayAcceptUnsimulated(h);
        var simulated = !optimistic ? await simulation.CheckAsync(h, bid.Payload, ct)
            : verdicts.IsLate(h) ? await verdicts.CheckLateAsync(h, bid.Payload, ct) : null;
        if (simulated is not null) optimistic = false; // checked before its receipt (a late bid the node could answer)
        if (simulated?.Error is { } simError) return No(simError.Code, simError.Message);

        // 7. the atomic step: still open, still on the head, within the builder's bid limit
        var accepted = await store.AcceptAsync(h, headerHash, bid.Signature, decoded.Transactions.Count, bid.Payload, simulated?.CoinbaseGain, optimistic);
        switch (accepted)
        {
            // Acknowledged only once the replicas the durability setting asks for hold it (a resent bid is confirmed again:
            // its first answer may have been this refusal).
            case AuctionStore.Accepted a:
                if (optimistic) prefetcher.Offer(h.Slot, headerHash, h, bid.Payload, a.Sequence);
                return await store.ConfirmBidAsync(h.Slot) ? new Receipt(headerHash, a.ReceivedAtMs, SignReceipt(headerHash, a.ReceivedAtMs), false) : NotConfirmed();
            case AuctionStore.Duplicate d:
                return await store.ConfirmBidAsync(h.Slot, fence: true) ? new Receipt(headerHash, d.ReceivedAtMs, SignReceipt(headerHash, d.ReceivedAtMs), true) : NotConfirmed();
            case AuctionStore.Refused r:
                return r.Code switch
                {
                    "auction_closed" => No("auction_closed", $"the auction for slot {h.Slot} closed"),
                    "stale_parent" => No("stale_parent", $"parent_hash {h.ParentHash} is not the head {r.Detail}"),
                    "stale_parent_number" => No("stale_parent", $"number {h.Number} does not extend the head (expected {r.Detail})"),
                    "wrong_proposer" => No("wrong_proposer", $"proposer {h.Proposer} is not slot {h.Slot}'s proposer {r.Detail}"),
                    "rate_limited" => No("rate_limited", $"builder {h.Builder} reached {r.Detail} bids for slot {h.Slot}"),
                    "storage_budget" => No("storage_budget", $"builder {h.Builder} stores {r.Detail.Split('|')[0]} bytes in slot {h.Slot}; this bid would pass the budget of {r.Detail.Split('|')[1]}"),
                    _ => No(r.Code, r.Detail),
                };
            default:
                throw new UnreachableException();
        }
    }

    Refused NotConfirmed() => No("unavailable",
        $"the bid is stored, but {market.Options.Durability.WaitReplicas} Redis replica(s) did not confirm it within {market.Options.Durability.WaitTimeoutMs} ms, so it is not acknowledged; resend it (the same bid gets the same receipt)");

    /// <summary>ECDSA here is deterministic (RFC 6979), so re-signing a duplicate gives the same receipt.</summary>
    Signature SignReceipt(Hash32 headerHash, ulong receivedAtMs) =>
        key.Key.Sign(Eip712.Digest(market.Domain, new BidReceipt(headerHash, receivedAtMs)));
}
