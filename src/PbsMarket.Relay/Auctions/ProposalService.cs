using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.Relay.Api;
using PbsMarket.Relay.Archive;
using PbsMarket.Relay.Chain;
using PbsMarket.Relay.Infrastructure;
using StackExchange.Redis;

namespace PbsMarket.Relay.Auctions;

/// <summary>
/// The proposer side: serving the winning header to the slot's proposer only, accepting its signed
/// proposal once (keeping a conflicting second one as equivocation evidence), moving the head and
/// queueing the block for L1; and adopting headers proposed elsewhere.
/// </summary>
public sealed class ProposalService(
    AuctionStore store, ResultService results, Market market, IChainView chain, ArchiveQueue archive,
    IConnectionMultiplexer redis, EventHub events, RelayMetrics metrics, RelayKey key, ILogger<ProposalService> log)
{
    public abstract record HeaderOutcome;
    public sealed record WinningHeader(StoredBid Bid, SlotView Result) : HeaderOutcome;
    public sealed record NoBid : HeaderOutcome;
    public sealed record HeaderRefused(Rejection Rejection) : HeaderOutcome;

    public async Task<HeaderOutcome> GetHeaderAsync(ulong slot, string? signatureHeader)
    {
        if (!Signature.TryParse(signatureHeader, out var signature, out var sigError))
            return new HeaderRefused(new("not_proposer", $"X-Pbs-Signature: {(signatureHeader is null ? "missing" : sigError)}"));
        if (market.Clock.CheckSlot(slot) is { } range) return new HeaderRefused(new(range.Code, range.Message));
        var proposer = await ScheduledProposerAsync(slot);
        if (proposer is null)
            return new HeaderRefused(new("unavailable", $"the proposer of slot {slot} is not known yet"));
        var digest = Eip712.Digest(market.Domain, new HeaderRequest(slot, proposer.Value));
        if (!SignatureRecovery.TryRecover(digest, signature, out var signer) || signer != proposer.Value)
            return new HeaderRefused(new("not_proposer", $"only slot {slot}'s proposer {proposer} may fetch its header"));
        var now = market.Clock.NowMs;
        var closesAt = market.Clock.AuctionClosesMs(slot);
        if (now < closesAt) return new HeaderRefused(new("too_early", $"the auction for slot {slot} closes at {closesAt} (in {closesAt - now} ms)"));
        var closed = await results.EnsureClosedAsync(slot);
        if (closed is null)
        {
            // Our clock says closed but Redis's has not quite reached it, or no auction ever opened.
            return await store.GetAuctionAsync(slot) is null
                ? new NoBid()
                : new HeaderRefused(new("too_early", $"the auction for slot {slot} is closing"));
        }
        if (closed.Winner is null) return new NoBid();
        metrics.HeadersServed.Add(1);
        return new WinningHeader(closed.Winner, closed.View);
    }

    async Task<Address?> ScheduledProposerAsync(ulong slot) =>
        (await store.GetAuctionAsync(slot))?.Proposer ?? market.ProposerOf(slot, chain);

    public abstract record ProposeOutcome;
    public sealed record Payload(byte[] Bytes) : ProposeOutcome;
    public sealed record ProposeRefused(Rejection Rejection) : ProposeOutcome;

    public async Task<ProposeOutcome> ProposeAsync(ReadOnlyMemory<byte> body)
    {
        var parsed = Wire.ParseProposalSubmission(body.Span);
        if (!parsed.TryGet(out var p, out var error)) return Refuse(error.Code, error.Message);
        if (market.Clock.CheckSlot(p.Slot) is { } range) return Refuse(range.Code, range.Message);
        var proposer = await ScheduledProposerAsync(p.Slot);
        if (proposer is null) return Refuse("unavailable", $"the proposer of slot {p.Slot} is not known yet");
        // A proposal that says what it signed is authenticated before anything else.
        if (p.Proposal is { } stated && (!SignatureRecovery.TryRecover(Eip712.Digest(market.Domain, stated), p.Signature, out var statedSigner) || statedSigner != proposer.Value))
            return Refuse("not_proposer", $"the proposal is not signed by slot {p.Slot}'s proposer {proposer}");

        var now = market.Clock.NowMs;
        var closed = await results.EnsureClosedAsync(p.Slot);
        if (closed is null) return Refuse("too_early", $"the auction for slot {p.Slot} has not closed");

        // Version 2: the proposer signs the header and the settlement (price, bids root, this relay). The
        // submission may say what it signed; otherwise it is taken to be this relay's settlement of the header.
        var ours = closed.Winner is { } won && closed.View.SettlementOf() is { } settlement
            ? SettlementRules.ProposalFor(p.Slot, won.HeaderHash, settlement, key.Address) : null;
        var signed = p.Proposal ?? (ours is not null && ours.HeaderHash == p.HeaderHash ? ours : Proposal.Fallback(p.Slot, p.HeaderHash));
        if (!SignatureRecovery.TryRecover(Eip712.Digest(market.Domain, signed), p.Signature, out var signer) || signer != proposer.Value)
            return Refuse("not_proposer", $"the proposal is not signed by slot {p.Slot}'s proposer {proposer}");

        if (ours is null || signed != ours)
        {
            // A validly signed proposal of something else: evidence if the proposer already signed another one.
            var previous = await store.GetProposalAsync(p.Slot);
            if (previous is not null && previous.Proposal != signed)
                return await EquivocationAsync(proposer.Value, previous.Proposal, previous.Signature, signed, p.Signature, now);
            return ours is not null && ours.HeaderHash == signed.HeaderHash
                ? Refuse("wrong_settlement", $"the proposal's settlement (price {signed.Price}, bids root {signed.BidsRoot}, relay {signed.Relay}) is not this relay's (price {ours.Price}, bids root {ours.BidsRoot}, relay {ours.Relay})")
                : Refuse("not_winner", $"header {p.HeaderHash} is not the winning header of slot {p.Slot}");
        }
        var winner = closed.Winner!;
        var outcome = await store.ProposeAsync(signed, p.Signature, now, "auction");
        switch (outcome)
        {
            case AuctionStore.Conflict c:
                return await EquivocationAsync(proposer.Value, c.First, c.FirstSignature, signed, p.Signature, now);
            case AuctionStore.NewProposal:
                var head = await store.GetHeadAsync();
                if (HeadRules.CheckAdoption(market.Clock, head.ToChainHead(), winner.Header, now) is { } why)
                    // Kept (the proposer signed it, and L1 may still take it), but the head does not move back in time.
                    log.LogWarning("slot {Slot} proposed but not adopted as head: {Why}", p.Slot, why);
                else
                    await AdoptAsync(winner.Header, winner.HeaderHash, p.Slot);
                break;
        }
        var payload = await store.GetPayloadAsync(p.Slot, p.HeaderHash);
        if (payload is null) return Refuse("unavailable", $"the payload of {p.HeaderHash} is no longer held");
        if (outcome is AuctionStore.NewProposal)
        {
            await QueueForL1Async(winner.Header, winner.HeaderHash, winner.Signature, p.Signature, payload, closed.View.SettlementOf(), "auction", now);
            metrics.Proposals.Add(1, RelayMetrics.Tag("source", "auction"));
        }
        // The 200 promises the proposal is kept and posted: confirmed on the replicas first (a resent one again).
        if (!await store.ConfirmProposalAsync(p.Slot, fence: outcome is not AuctionStore.NewProposal)) return NotConfirmed(p.Slot);
        return new Payload(payload);
    }

    public abstract record AnnounceOutcome;
    public sealed record Announced(bool Adopted, AuctionStore.Head Head) : AnnounceOutcome;
    public sealed record AnnounceRefused(Rejection Rejection) : AnnounceOutcome;

    /// <summary>A header proposed elsewhere (another relay, or the proposer's own fallback block).</summary>
    public async Task<AnnounceOutcome> AnnounceAsync(ReadOnlyMemory<byte> body)
    {
        var parsed = Wire.ParseHeadAnnouncement(body.Span, new WireLimits(market.Options.MaxPayloadBytes));
        if (!parsed.TryGet(out var a, out var error)) return new AnnounceRefused(new(error.Code, error.Message));
        var h = a.Header;
        var clock = market.Clock;
        var now = clock.NowMs;
        // Cheap first: the head rules' timing (no state), the header's own fields, the head; then signatures; payload last.
        var timing = HeadRules.CheckTiming(clock, h.Slot, now);
        if (timing is not null && timing.Code != ErrorCodes.TooLate) return AnnounceNo(timing);
        if (h.L2ChainId != market.L2ChainId) return new AnnounceRefused(new("wrong_chain_id", $"l2_chain_id {h.L2ChainId} is not {market.L2ChainId}"));
        if (h.TimestampMs != clock.StartMs(h.Slot))
            return new AnnounceRefused(new("wrong_timestamp", $"timestamp_ms {h.TimestampMs} is not the start of slot {h.Slot}"));
        var proposer = market.ProposerOf(h.Slot, chain);
        // A head that comes too late is refused as such even when its epoch's proposer set is no longer held.
        if (proposer is null) return timing is not null ? AnnounceNo(timing) : new AnnounceRefused(new("unavailable", market.NoProposerReason(h.Slot, chain)));
        if (h.Proposer != proposer.Value) return new AnnounceRefused(new("wrong_proposer", $"proposer {h.Proposer} is not slot {h.Slot}'s proposer {proposer}"));
        if (L1Limits.CheckPostable(a.Payload.Length) is { } postable) return AnnounceNo(postable);
        var head = await store.GetHeadAsync();
        var extends = HeadRules.CheckExtends(head.ToChainHead(), h.Slot, h.Number, h.ParentHash);
        var headerHash = Eip712.HashStruct(h);
        if (!SignatureRecovery.Verify(Eip712.Digest(market.Domain, headerHash), a.BuilderSignature, h.Builder))
            return new AnnounceRefused(new("invalid_signature", $"builder_signature is not by the builder {h.Builder}"));
        // Version 2: the settlement travels with the head, checked here exactly as L1 will check it (SettlementRules),
        // and the proposer signed the header and that settlement.
        var settlement = a.SettlementOrNone;
        var relay = SettlementRules.RelayOf(market.Domain, h.Slot, headerHash, settlement);
        if (settlement.RelaySignature is not null && relay.IsZero)
            return new AnnounceRefused(new("invalid_signature", "relay_signature does not recover to any address"));
        if (SettlementRules.Check(market.Domain, market.PriceRule, market.Reserve, h, settlement, relay) is { } settlementError)
            return new AnnounceRefused(new(settlementError.Code, settlementError.Message));
        var signed = SettlementRules.ProposalFor(h.Slot, headerHash, settlement, relay);
        if (!SignatureRecovery.Verify(Eip712.Digest(market.Domain, signed), a.ProposalSignature, proposer.Value))
            return new AnnounceRefused(new("invalid_signature", $"proposal_signature is not by slot {h.Slot}'s proposer {proposer} over this header and settlement"));
        if ((timing ?? extends) is { } refusal)
        {
            // Not adoptable (too late, behind the head, not on it): nothing is stored or queued. The same header
            // again gets the same answer; a validly signed second header for a slot the proposer already chose is
            // still evidence of equivocation.
            var previous = await store.GetProposalAsync(h.Slot);
            if (previous is not null && previous.Proposal == signed) return new Announced(false, head);
            if (previous is not null)
            {
                var refused = await EquivocationAsync(proposer.Value, previous.Proposal, previous.Signature, signed, a.ProposalSignature, now);
                return new AnnounceRefused(((ProposeRefused)refused).Rejection);
            }
            return AnnounceNo(refusal);
        }
        if (Keccak.Hash(a.Payload) != h.PayloadHash) return new AnnounceRefused(new("payload_mismatch", "keccak256(payload) is not payload_hash"));
        var decoded = PayloadCodec.Decode(a.Payload, market.L2ChainId, new PayloadLimits(market.Options.MaxPayloadBytes, market.Options.MaxTxsPerBlock));
        if (!decoded.IsOk) return new AnnounceRefused(new(decoded.Error.Code, decoded.Error.Message));

        var outcome = await store.ProposeAsync(signed, a.ProposalSignature, now, "announced");
        if (outcome is AuctionStore.Conflict c)
        {
            var refused = await EquivocationAsync(proposer.Value, c.First, c.FirstSignature, signed, a.ProposalSignature, now);
            return new AnnounceRefused(((ProposeRefused)refused).Rejection);
        }
        if (outcome is AuctionStore.NewProposal)
        {
            await AdoptAsync(h, headerHash, h.Slot);
            // Not ours, but its settlement is authenticated, so any poster's copy settles the same: posted if, a slot
            // on, nobody has (the auctioning relay usually has; L1 skips a second copy rather than reverting).
            await QueueForL1Async(h, headerHash, a.BuilderSignature, a.ProposalSignature, a.Payload, a.Settlement, "announced", now,
                notBeforeMs: market.Clock.StartMs(h.Slot) + (ulong)market.Options.SlotMs);
            metrics.Proposals.Add(1, RelayMetrics.Tag("source", "announced"));
            if (!await store.ConfirmProposalAsync(h.Slot)) return new AnnounceRefused(((ProposeRefused)NotConfirmed(h.Slot)).Rejection);
            return new Announced(true, await store.GetHeadAsync());
        }
        return new Announced(false, await store.GetHeadAsync());
    }

    async Task AdoptAsync(Header header, Hash32 headerHash, ulong slot)
    {
        // The open auction, and the one after this slot, which may already exist and be open at the window's edge.
        var carryInto = new List<ulong> { slot + 1 };
        if (market.Clock.OpenAuctionSlot(market.Clock.NowMs) is { } open) carryInto.Add(open);
        await store.AdvanceHeadAsync(new AuctionStore.Head(headerHash, header.Number, slot), carryInto);
        await events.PublishAsync(JsonSerializer.Serialize(new { type = "proposed", slot = slot.ToString(), header_hash = headerHash.ToString(), number = header.Number.ToString() }));
        log.LogInformation("head is now {Hash} (number {Number}, slot {Slot})", headerHash, header.Number, slot);
    }

    async Task QueueForL1Async(Header header, Hash32 headerHash, Signature builderSig, Signature proposalSig, byte[] payload,
        Settlement? settlement, string source, ulong now, ulong notBeforeMs = 0)
    {
        var headerJson = System.Text.Encoding.UTF8.GetString(Wire.ToUtf8(header, Wire.WriteHeader));
        var settlementJson = SettlementJson(settlement);
        await store.StoreProposedBlockAsync(header.Slot, headerHash, headerJson, builderSig, payload, settlementJson);
        var s = settlement ?? Settlement.None;
        var item = new L1Item(header.Slot, headerHash, headerJson, builderSig.ToString(), proposalSig.ToString(),
            "0x" + Convert.ToHexStringLower(payload), s.Price, s.BidsRoot, source, notBeforeMs, settlementJson);
        await redis.GetDatabase().StreamAddAsync(store.Keys.L1Queue, "item", JsonSerializer.Serialize(item, WireJson.Options));
        await archive.EnqueueProposalAsync(new ProposalRecord(header.Slot, headerHash, proposalSig.ToString(), source, headerJson,
            builderSig.ToString(), item.PayloadHex, now));
    }

    /// <summary>The settlement fields as one JSON object (empty for a block without an auction result).</summary>
    public static string SettlementJson(Settlement? s) => System.Text.Encoding.UTF8.GetString(Wire.ToUtf8(s, (w, x) =>
    {
        w.WriteStartObject();
        Wire.WriteSettlementFields(w, x);
        w.WriteEndObject();
    }));

    async Task<ProposeOutcome> EquivocationAsync(Address proposer, Proposal first, Signature firstSig, Proposal second, Signature secondSig, ulong now)
    {
        var slot = first.Slot;
        var firstHash = first.HeaderHash;
        var secondHash = second.HeaderHash;
        var evidence = EquivocationRecord.Of(proposer, first, firstSig, second, secondSig, now);
        await archive.EnqueueEquivocationAsync(evidence);
        await redis.GetDatabase().StreamAddAsync(store.Keys.L1Evidence, "evidence", JsonSerializer.Serialize(evidence, WireJson.Options));
        metrics.Equivocations.Add(1);
        log.LogWarning("equivocation by {Proposer} in slot {Slot}: {First} and {Second}; evidence kept", proposer, slot, firstHash, secondHash);
        return Refuse("equivocation", $"slot {slot} already has a proposal for {firstHash} by {proposer}; this conflicting one is kept as evidence");
    }

    static ProposeRefused Refuse(string code, string message) => new(new Rejection(code, message));

    ProposeRefused NotConfirmed(ulong slot) => Refuse("unavailable",
        $"the proposal for slot {slot} is stored, but {market.Options.Durability.WaitReplicas} Redis replica(s) did not confirm it within {market.Options.Durability.WaitTimeoutMs} ms; resend it (the same proposal gets the same answer)");
    static AnnounceRefused AnnounceNo(ProtocolError e) => new(new Rejection(e.Code, e.Message));
}

/// <summary>A proposed block waiting to be posted to the L1 inbox, with its settlement (JSON object of the settlement fields).</summary>
public sealed record L1Item(ulong Slot, Hash32 HeaderHash, string HeaderJson, string BuilderSignature, string ProposalSignature,
    string PayloadHex, BigInteger Price, Hash32 BidsRoot, string Source, ulong NotBeforeMs = 0, string SettlementJson = "{}")
{
    /// <summary>The settlement L1 needs (a method, not a property: the item is serialized as JSON).</summary>
    public Settlement ToSettlement()
    {
        using var doc = JsonDocument.Parse(SettlementJson);
        return Wire.ParseSettlementOf(doc.RootElement).Value ?? Settlement.None;
    }
}
