using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.L1;

namespace PbsMarket.L2;

/// <summary>A proposed header whose signatures checked out.</summary>
public sealed record ProposedBlock(Header Header, Hash32 HeaderHash, byte[] Payload);

/// <summary>
/// Reads the newest proposed header of each relay (<c>GET /relay/v1/proposer/head</c>) and checks it as far as L1 would,
/// bar the escrow: the header hash, the payload hash, the builder's signature, the relay's result signature and the
/// settlement's form, and the proposal signature by the proposer L1 schedules for the slot. A relay is not trusted: a
/// header that fails is dropped (and logged by the caller), and L1 replaces whatever it holds otherwise.
/// </summary>
public sealed class ProposedHeads(HttpClient http, Eip712Domain domain, System.Numerics.BigInteger l2ChainId, InboxClient inbox, int maxPayloadBytes)
{
    readonly Dictionary<ulong, Address> _proposers = [];

    public async Task<(ProposedBlock? Block, string? Refusal)> FetchAsync(string relayUrl, CancellationToken ct)
    {
        using var response = await http.GetAsync($"{relayUrl.TrimEnd('/')}/relay/v1/proposer/head", HttpCompletionOption.ResponseHeadersRead, ct);
        if (!response.IsSuccessStatusCode) return (null, $"HTTP {(int)response.StatusCode}");
        var body = await response.Content.ReadAsByteArrayAsync(ct);
        if (body.Length > 2 * maxPayloadBytes + 65_536) return (null, $"the answer is {body.Length} bytes");
        using var doc = JsonDocument.Parse(body);
        if (!doc.RootElement.TryGetProperty("header", out _)) return (null, null); // no block proposed yet
        // The head's own fields (hash, number, slot) beside the announcement's.
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            foreach (var p in doc.RootElement.EnumerateObject())
                if (p.Name is not ("hash" or "number" or "slot")) p.WriteTo(w);
            w.WriteEndObject();
        }
        var parsed = Wire.ParseHeadAnnouncement(stream.ToArray(), new WireLimits(maxPayloadBytes));
        if (!parsed.TryGet(out var a, out var error)) return (null, $"{error.Code}: {error.Message}");
        return await CheckAsync(a, ct);
    }

    public async Task<(ProposedBlock? Block, string? Refusal)> CheckAsync(HeadAnnouncement a, CancellationToken ct)
    {
        var h = a.Header;
        if (h.L2ChainId != l2ChainId) return (null, $"l2_chain_id {h.L2ChainId}");
        var hash = Eip712.HashStruct(h);
        if (Keccak.Hash(a.Payload) != h.PayloadHash) return (null, "keccak256(payload) is not payload_hash");
        if (!SignatureRecovery.Verify(Eip712.Digest(domain, hash), a.BuilderSignature, h.Builder)) return (null, "builder_signature is not by the builder");
        var settlement = a.SettlementOrNone;
        var relay = SettlementRules.RelayOf(domain, h.Slot, hash, settlement);
        if (settlement.RelaySignature is not null && relay.IsZero) return (null, "relay_signature does not recover");
        var proposal = SettlementRules.ProposalFor(h.Slot, hash, settlement, relay);
        if (!_proposers.TryGetValue(h.Slot, out var scheduled))
        {
            scheduled = await inbox.ProposerForSlotAsync(h.Slot, ct);
            if (_proposers.Count > 1024) _proposers.Clear();
            _proposers[h.Slot] = scheduled;
        }
        if (scheduled.IsZero || h.Proposer != scheduled) return (null, $"proposer {h.Proposer} is not slot {h.Slot}'s scheduled proposer {scheduled}");
        if (!SignatureRecovery.Verify(Eip712.Digest(domain, proposal), a.ProposalSignature, scheduled)) return (null, "proposal_signature is not by the slot's proposer");
        return (new ProposedBlock(h, hash, a.Payload), null);
    }
}
