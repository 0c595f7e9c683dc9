using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.L1;

namespace PbsMarket.L2;

/// <summary>A proposed header whose signatures checked out.</summary>
public sealed record ProposedBlock(Header Header, Hash32 HeaderHash, byte[] Payload);

/// <summary>
/// Reads the newest proposed header of each relay (<c>GET /relay/v1/proposer/head</c>) and checks what L1 would check of
/// one header, bar the escrow and the chain position: the header's own fields (chain id, the slot's start as
/// <c>timestamp_ms</c>, a slot that has started, <c>gas_used &lt;= gas_limit</c>, a builder), the payload hash, the builder's
/// signature, the relay's result signature, and the proposal signature by the proposer L1 schedules for the slot. A relay
/// is not trusted: a header that fails is dropped (and logged by the caller), and L1 replaces whatever it holds otherwise.
/// One deadline covers each whole fetch, and the answer is read up to a size limit.
/// </summary>
public sealed class ProposedHeads(HttpClient http, Eip712Domain domain, DeployedMarket market, InboxClient inbox, int maxPayloadBytes, TimeSpan timeout)
{
    readonly Dictionary<ulong, Address> _proposers = [];
    long MaxAnswerBytes => 2L * maxPayloadBytes + 65_536;

    public async Task<(ProposedBlock? Block, string? Refusal)> FetchAsync(string relayUrl, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        byte[] body;
        try
        {
            using var response = await http.GetAsync($"{relayUrl.TrimEnd('/')}/relay/v1/proposer/head", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            if (!response.IsSuccessStatusCode) return (null, $"HTTP {(int)response.StatusCode}");
            if (response.Content.Headers.ContentLength is > 0 and var declared && declared > MaxAnswerBytes) return (null, $"the answer declares {declared} bytes");
            await using var stream = await response.Content.ReadAsStreamAsync(deadline.Token);
            using var buffer = new MemoryStream();
            var chunk = new byte[16 * 1024];
            int n;
            while ((n = await stream.ReadAsync(chunk, deadline.Token)) > 0)
            {
                if (buffer.Length + n > MaxAnswerBytes) return (null, $"the answer is over {MaxAnswerBytes} bytes");
                buffer.Write(chunk, 0, n);
            }
            body = buffer.ToArray();
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return (null, $"no whole answer within {timeout.TotalMilliseconds:0} ms");
        }
        using var doc = JsonDocument.Parse(body);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) return (null, "the answer is not a JSON object");
        if (!doc.RootElement.TryGetProperty("header", out _)) return (null, null); // no block proposed yet
        // The head's own fields (hash, number, slot) beside the announcement's.
        using var stream2 = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream2))
        {
            w.WriteStartObject();
            foreach (var p in doc.RootElement.EnumerateObject())
                if (p.Name is not ("hash" or "number" or "slot")) p.WriteTo(w);
            w.WriteEndObject();
        }
        var parsed = Wire.ParseHeadAnnouncement(stream2.ToArray(), new WireLimits(maxPayloadBytes));
        if (!parsed.TryGet(out var a, out var error)) return (null, $"{error.Code}: {error.Message}");
        return await CheckAsync(a, ct);
    }

    public async Task<(ProposedBlock? Block, string? Refusal)> CheckAsync(HeadAnnouncement a, CancellationToken ct)
    {
        var h = a.Header;
        if (h.L2ChainId != market.L2ChainId) return (null, $"l2_chain_id {h.L2ChainId}");
        var start = (ulong)market.GenesisMs + h.Slot * (ulong)market.SlotMs;
        if (h.Slot > (ulong.MaxValue - (ulong)market.GenesisMs) / (ulong)market.SlotMs || h.TimestampMs != start) return (null, $"timestamp_ms {h.TimestampMs} is not the start of slot {h.Slot}");
        if ((ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() < start) return (null, $"slot {h.Slot} has not started");
        if (h.GasUsed > h.GasLimit) return (null, $"gas_used {h.GasUsed} exceeds gas_limit {h.GasLimit}");
        if (h.Builder.IsZero) return (null, "the builder is the zero address");
        var hash = Eip712.HashStruct(h);
        if (Keccak.Hash(a.Payload) != h.PayloadHash) return (null, "keccak256(payload) is not payload_hash");
        if (!SignatureRecovery.Verify(Eip712.Digest(domain, hash), a.BuilderSignature, h.Builder)) return (null, "builder_signature is not by the builder");
        var settlement = a.SettlementOrNone;
        var relay = SettlementRules.RelayOf(domain, h.Slot, hash, settlement);
        if (settlement.RelaySignature is not null && relay.IsZero) return (null, "relay_signature does not recover");
        var proposal = SettlementRules.ProposalFor(h.Slot, hash, settlement, relay);
        // The schedule is read from L1 for the slot, and kept only once a proposal signature by it has checked out (a relay
        // asking about slots whose seed is not final yet cannot pin a wrong proposer here).
        var cached = _proposers.TryGetValue(h.Slot, out var scheduled);
        if (!cached) scheduled = await inbox.ProposerForSlotAsync(h.Slot, ct);
        if (scheduled.IsZero || h.Proposer != scheduled) return (null, $"proposer {h.Proposer} is not slot {h.Slot}'s scheduled proposer {scheduled}");
        if (!SignatureRecovery.Verify(Eip712.Digest(domain, proposal), a.ProposalSignature, scheduled)) return (null, "proposal_signature is not by the slot's proposer");
        if (!cached)
        {
            if (_proposers.Count >= 1024) _proposers.Clear();
            _proposers[h.Slot] = scheduled;
        }
        return (new ProposedBlock(h, hash, a.Payload), null);
    }
}
