using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Numerics;
using System.Text.Json;

namespace PbsMarket.Core;

/// <summary>A parse outcome: a value, or a <see cref="ProtocolError"/> naming the offending field. Never throws.</summary>
public readonly struct ParseResult<T>
{
    private readonly T? _value;

    private ParseResult(T? value, ProtocolError? error)
    {
        _value = value;
        Error = error;
    }

    public static ParseResult<T> Ok(T value) => new(value, null);
    public static ParseResult<T> Fail(string code, string message) => new(default, new ProtocolError(code, message));
    public static ParseResult<T> Fail(ProtocolError error) => new(default, error);
    public static implicit operator ParseResult<T>(ProtocolError error) => Fail(error);

    [MemberNotNullWhen(false, nameof(Error))]
    public bool IsOk => Error is null;

    public ProtocolError? Error { get; }

    /// <summary>The parsed value; throws if parsing failed.</summary>
    public T Value => IsOk ? _value! : throw new InvalidOperationException($"parse failed: {Error}");

    public string? Code => Error?.Code;
    public string? Message => Error?.Message;

    public bool TryGet([MaybeNullWhen(false)] out T value, [NotNullWhen(false)] out ProtocolError? error)
    {
        value = _value;
        error = Error;
        return Error is null;
    }

    public override string ToString() => IsOk ? $"Ok({_value})" : $"Fail({Error})";
}

/// <summary>Size limits applied while parsing wire messages.</summary>
public sealed record WireLimits(int MaxPayloadBytes = WireLimits.DefaultMaxPayloadBytes)
{
    public const int DefaultMaxPayloadBytes = 1 << 20;
    public static WireLimits Default { get; } = new();
}

/// <summary><c>POST /relay/v1/builder/bids</c> body.</summary>
public sealed record BidSubmission(Header Header, Signature Signature, byte[] Payload);

/// <summary>
/// <c>POST /relay/v1/proposer/proposals</c> body. Version 2: the signature is over
/// <c>Proposal(slot, headerHash, price, bidsRoot, relay)</c>; <see cref="Price"/>, <see cref="BidsRoot"/> and
/// <see cref="Relay"/> say what was signed (all three or none; none = the relay's own settlement of the header).
/// </summary>
public sealed record ProposalSubmission(ulong Slot, Hash32 HeaderHash, Signature Signature, BigInteger? Price = null, Hash32? BidsRoot = null, Address? Relay = null)
{
    public static ProposalSubmission Of(Proposal p, Signature signature) => new(p.Slot, p.HeaderHash, signature, p.Price, p.BidsRoot, p.Relay);

    /// <summary>The signed proposal, when the submission says what was signed.</summary>
    public Proposal? Proposal => Price is { } price && BidsRoot is { } root && Relay is { } relay ? new Proposal(Slot, HeaderHash, price, root, relay) : null;
}

/// <summary>
/// <c>POST /relay/v1/proposer/heads</c> body, and (with the payload) <c>GET /relay/v1/proposer/head</c>. Version 2
/// carries the settlement L1 needs (price, bids root, bid count, the auctioning relay's AuctionResult signature and
/// the runner-up evidence), so that anyone can post the header; without them it is the proposer's own block.
/// </summary>
public sealed record HeadAnnouncement(Header Header, Signature BuilderSignature, Signature ProposalSignature, byte[] Payload, Settlement? Settlement = null)
{
    public Settlement SettlementOrNone => Settlement ?? Core.Settlement.None;
}

/// <summary>The <c>202</c> answer to a bid: {header_hash, received_at_ms, relay_signature}.</summary>
public sealed record BidReceiptResponse(Hash32 HeaderHash, ulong ReceivedAtMs, Signature RelaySignature);

/// <summary>
/// Strict JSON wire forms (see docs/protocol.md "Parsing rules"): snake_case names exactly; unknown and duplicate
/// fields refused; integers are decimal strings without sign, whitespace or leading zeros; hex is 0x-prefixed,
/// any case on input, lowercase on output. Every failure is code <c>malformed</c> (or <c>payload_too_large</c>)
/// with a message naming the field.
/// </summary>
public static class Wire
{
    private static readonly JsonDocumentOptions s_docOptions = new() { MaxDepth = 8, AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow };

    private static readonly string[] s_headerFields =
        ["l2_chain_id", "slot", "number", "parent_hash", "timestamp_ms", "gas_limit", "gas_used", "payload_hash", "builder", "proposer", "value"];

    // ---- entry points --------------------------------------------------------------------------------------

    public static ParseResult<BidSubmission> ParseBidSubmission(ReadOnlySpan<byte> utf8Json, WireLimits? limits = null) =>
        WithDocument(utf8Json, root =>
        {
            var o = new ObjectReader(root, "", ["header", "signature", "payload"]);
            if (o.Error is { } e) return e;
            var header = ParseHeader(o.Get("header"), "header");
            if (!header.IsOk) return header.Error;
            if (!o.Signature("signature", out var sig, out e)) return e;
            if (!o.Payload("payload", limits ?? WireLimits.Default, out var payload, out e)) return e;
            return ParseResult<BidSubmission>.Ok(new BidSubmission(header.Value, sig, payload));
        });

    private static readonly string[] s_proposalSettlement = ["price", "bids_root", "relay"];
    private static readonly string[] s_settlementFields = ["price", "bids_root", "bid_count", "relay_signature"];
    private static readonly string[] s_runnerUpFields = ["gas_limit", "gas_used", "payload_hash", "builder", "received_at_ms", "builder_signature", "proof"];

    public static ParseResult<ProposalSubmission> ParseProposalSubmission(ReadOnlySpan<byte> utf8Json) =>
        WithDocument(utf8Json, root =>
        {
            var o = new ObjectReader(root, "", ["slot", "header_hash", "signature"], s_proposalSettlement);
            if (o.Error is { } e) return e;
            if (!o.UInt64("slot", out var slot, out e)) return e;
            if (!o.Hash("header_hash", out var hh, out e)) return e;
            if (!o.Signature("signature", out var sig, out e)) return e;
            if (!o.AllOrNone(s_proposalSettlement, out var present, out e)) return e;
            if (!present) return ParseResult<ProposalSubmission>.Ok(new ProposalSubmission(slot, hh, sig));
            if (!o.UInt256("price", out var price, out e)) return e;
            if (!o.Hash("bids_root", out var root2, out e)) return e;
            if (!o.Address("relay", out var relay, out e)) return e;
            return ParseResult<ProposalSubmission>.Ok(new ProposalSubmission(slot, hh, sig, price, root2, relay));
        });

    public static ParseResult<HeadAnnouncement> ParseHeadAnnouncement(ReadOnlySpan<byte> utf8Json, WireLimits? limits = null) =>
        WithDocument(utf8Json, root =>
        {
            var o = new ObjectReader(root, "", ["header", "builder_signature", "proposal_signature", "payload"], [.. s_settlementFields, "runner_up"]);
            if (o.Error is { } e) return e;
            var header = ParseHeader(o.Get("header"), "header");
            if (!header.IsOk) return header.Error;
            if (!o.Signature("builder_signature", out var bsig, out e)) return e;
            if (!o.Signature("proposal_signature", out var psig, out e)) return e;
            if (!o.Payload("payload", limits ?? WireLimits.Default, out var payload, out e)) return e;
            var settlement = ParseSettlement(o, "");
            if (!settlement.IsOk) return settlement.Error;
            return ParseResult<HeadAnnouncement>.Ok(new HeadAnnouncement(header.Value, bsig, psig, payload, settlement.Value));
        });

    /// <summary>The settlement fields of an object (price, bids_root, bid_count, relay_signature, runner_up), or null when absent.</summary>
    private static ParseResult<Settlement?> ParseSettlement(ObjectReader o, string path)
    {
        if (!o.AllOrNone(s_settlementFields, out var present, out var e)) return e;
        if (!present)
        {
            return o.Has("runner_up") ? ParseResult<Settlement?>.Fail(ErrorCodes.Malformed, "runner_up without the settlement it proves (price, bids_root, bid_count, relay_signature)")
                : ParseResult<Settlement?>.Ok(null);
        }
        if (!o.UInt256("price", out var price, out e)) return e;
        if (!o.Hash("bids_root", out var root, out e)) return e;
        if (!o.UInt64("bid_count", out var count, out e)) return e;
        if (count > uint.MaxValue) return ParseResult<Settlement?>.Fail(ErrorCodes.Malformed, $"bid_count: {count} exceeds uint32");
        if (!o.Signature("relay_signature", out var relaySig, out e)) return e;
        RunnerUpEvidence? runnerUp = null;
        if (o.Has("runner_up") && o.Get("runner_up").ValueKind != JsonValueKind.Null)
        {
            var r = ParseRunnerUp(o.Get("runner_up"), path.Length == 0 ? "runner_up" : $"{path}.runner_up");
            if (!r.IsOk) return r.Error;
            runnerUp = r.Value;
        }
        return ParseResult<Settlement?>.Ok(new Settlement(price, root, (uint)count, relaySig, runnerUp));
    }

    public static ParseResult<RunnerUpEvidence> ParseRunnerUp(JsonElement element, string path = "runner_up")
    {
        var o = new ObjectReader(element, path, s_runnerUpFields);
        if (o.Error is { } e) return e;
        if (!o.UInt64("gas_limit", out var gasLimit, out e)) return e;
        if (!o.UInt64("gas_used", out var gasUsed, out e)) return e;
        if (!o.Hash("payload_hash", out var payloadHash, out e)) return e;
        if (!o.Address("builder", out var builder, out e)) return e;
        if (!o.UInt64("received_at_ms", out var ms, out e)) return e;
        if (!o.Signature("builder_signature", out var sig, out e)) return e;
        var proofElement = o.Get("proof");
        if (proofElement.ValueKind != JsonValueKind.Array) return ParseResult<RunnerUpEvidence>.Fail(ErrorCodes.Malformed, $"{path}.proof: expected an array");
        var proof = new List<Hash32>();
        foreach (var p in proofElement.EnumerateArray())
        {
            if (proof.Count >= 64) return ParseResult<RunnerUpEvidence>.Fail(ErrorCodes.Malformed, $"{path}.proof: more than 64 nodes");
            if (p.ValueKind != JsonValueKind.String || !Hash32.TryParse(p.GetString(), out var node))
                return ParseResult<RunnerUpEvidence>.Fail(ErrorCodes.Malformed, $"{path}.proof[{proof.Count}]: expected a 0x-prefixed 32-byte hex string");
            proof.Add(node);
        }
        return ParseResult<RunnerUpEvidence>.Ok(new RunnerUpEvidence(gasLimit, gasUsed, payloadHash, builder, ms, sig, proof));
    }

    /// <summary>Parses the settlement fields of a JSON object such as a header offer or a head (null when it carries none).</summary>
    public static ParseResult<Settlement?> ParseSettlementOf(JsonElement element)
    {
        var known = new List<string>();
        if (element.ValueKind == JsonValueKind.Object) known.AddRange(element.EnumerateObject().Select(p => p.Name));
        var o = new ObjectReader(element, "", [], [.. known]);
        if (o.Error is { } e) return e;
        return ParseSettlement(o, "");
    }

    public static ParseResult<BidReceiptResponse> ParseBidReceiptResponse(ReadOnlySpan<byte> utf8Json) =>
        WithDocument(utf8Json, root =>
        {
            var o = new ObjectReader(root, "", ["header_hash", "received_at_ms", "relay_signature"]);
            if (o.Error is { } e) return e;
            if (!o.Hash("header_hash", out var hh, out e)) return e;
            if (!o.UInt64("received_at_ms", out var ms, out e)) return e;
            if (!o.Signature("relay_signature", out var sig, out e)) return e;
            return ParseResult<BidReceiptResponse>.Ok(new BidReceiptResponse(hh, ms, sig));
        });

    /// <summary>Parses a header object; <paramref name="path"/> prefixes field names in messages.</summary>
    public static ParseResult<Header> ParseHeader(JsonElement element, string path = "header")
    {
        try
        {
            var o = new ObjectReader(element, path, s_headerFields);
            if (o.Error is { } e) return e;
            if (!o.UInt256("l2_chain_id", out var chainId, out e)) return e;
            if (!o.UInt64("slot", out var slot, out e)) return e;
            if (!o.UInt64("number", out var number, out e)) return e;
            if (!o.Hash("parent_hash", out var parent, out e)) return e;
            if (!o.UInt64("timestamp_ms", out var ts, out e)) return e;
            if (!o.UInt64("gas_limit", out var gasLimit, out e)) return e;
            if (!o.UInt64("gas_used", out var gasUsed, out e)) return e;
            if (!o.Hash("payload_hash", out var payloadHash, out e)) return e;
            if (!o.Address("builder", out var builder, out e)) return e;
            if (!o.Address("proposer", out var proposer, out e)) return e;
            if (!o.UInt256("value", out var value, out e)) return e;
            return ParseResult<Header>.Ok(new Header(chainId, slot, number, parent, ts, gasLimit, gasUsed, payloadHash, builder, proposer, value));
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
        {
            return ParseResult<Header>.Fail(ErrorCodes.Malformed, $"{Name(path)}: {ex.Message}");
        }
    }

    // ---- scalar parsers, public so the relay parses path segments and headers with the same rules ----------

    /// <summary>Decimal uint64: digits only, no sign, no whitespace, no leading zeros except "0".</summary>
    public static bool TryParseUInt64(string? text, out ulong value, out string error)
    {
        value = 0;
        if (!CheckDecimal(text, out error)) return false;
        if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value))
        {
            error = $"\"{text}\" exceeds uint64";
            return false;
        }
        return true;
    }

    /// <summary>Decimal uint256 with the same lexical rules as <see cref="TryParseUInt64"/>.</summary>
    public static bool TryParseUInt256(string? text, out BigInteger value, out string error)
    {
        value = BigInteger.Zero;
        if (!CheckDecimal(text, out error)) return false;
        if (text!.Length > 78 || !BigInteger.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) || value > Abi.MaxUInt256)
        {
            value = BigInteger.Zero;
            error = $"\"{Truncate(text)}\" exceeds uint256";
            return false;
        }
        return true;
    }

    private static bool CheckDecimal(string? text, out string error)
    {
        if (string.IsNullOrEmpty(text) || text.Length > 100 || !text.All(char.IsAsciiDigit) || (text.Length > 1 && text[0] == '0'))
        {
            error = $"\"{Truncate(text ?? "")}\" is not a non-negative decimal integer";
            if (text is { Length: > 1 } && text[0] == '0' && text.All(char.IsAsciiDigit)) error += " (leading zeros are not allowed)";
            return false;
        }
        error = "";
        return true;
    }

    private static string Truncate(string s) => s.Length <= 80 ? s : s[..80] + "...";

    // ---- writers --------------------------------------------------------------------------------------------

    public static void WriteHeader(Utf8JsonWriter w, Header h)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(h);
        w.WriteStartObject();
        WriteHeaderFields(w, h);
        w.WriteEndObject();
    }

    public static void WriteHeaderFields(Utf8JsonWriter w, Header h)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(h);
        w.WriteString("l2_chain_id", h.L2ChainId.ToString(CultureInfo.InvariantCulture));
        w.WriteString("slot", h.Slot.ToString(CultureInfo.InvariantCulture));
        w.WriteString("number", h.Number.ToString(CultureInfo.InvariantCulture));
        w.WriteString("parent_hash", h.ParentHash.ToString());
        w.WriteString("timestamp_ms", h.TimestampMs.ToString(CultureInfo.InvariantCulture));
        w.WriteString("gas_limit", h.GasLimit.ToString(CultureInfo.InvariantCulture));
        w.WriteString("gas_used", h.GasUsed.ToString(CultureInfo.InvariantCulture));
        w.WriteString("payload_hash", h.PayloadHash.ToString());
        w.WriteString("builder", h.Builder.ToString());
        w.WriteString("proposer", h.Proposer.ToString());
        w.WriteString("value", h.Value.ToString(CultureInfo.InvariantCulture));
    }

    public static void WriteBidSubmission(Utf8JsonWriter w, BidSubmission bid)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(bid);
        w.WriteStartObject();
        w.WritePropertyName("header");
        WriteHeader(w, bid.Header);
        w.WriteString("signature", bid.Signature.ToString());
        w.WriteString("payload", Hex.Encode(bid.Payload));
        w.WriteEndObject();
    }

    public static void WriteProposalSubmission(Utf8JsonWriter w, ProposalSubmission p)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(p);
        w.WriteStartObject();
        w.WriteString("slot", p.Slot.ToString(CultureInfo.InvariantCulture));
        w.WriteString("header_hash", p.HeaderHash.ToString());
        w.WriteString("signature", p.Signature.ToString());
        if (p.Proposal is { } signed)
        {
            w.WriteString("price", signed.Price.ToString(CultureInfo.InvariantCulture));
            w.WriteString("bids_root", signed.BidsRoot.ToString());
            w.WriteString("relay", signed.Relay.ToString());
        }
        w.WriteEndObject();
    }

    /// <summary>Writes a settlement's fields (nothing for a block without an auction result).</summary>
    public static void WriteSettlementFields(Utf8JsonWriter w, Settlement? s)
    {
        ArgumentNullException.ThrowIfNull(w);
        if (s?.RelaySignature is not { } relaySig) return;
        w.WriteString("price", s.Price.ToString(CultureInfo.InvariantCulture));
        w.WriteString("bids_root", s.BidsRoot.ToString());
        w.WriteString("bid_count", s.BidCount.ToString(CultureInfo.InvariantCulture));
        w.WriteString("relay_signature", relaySig.ToString());
        if (s.RunnerUp is { } r)
        {
            w.WritePropertyName("runner_up");
            WriteRunnerUp(w, r);
        }
    }

    public static void WriteRunnerUp(Utf8JsonWriter w, RunnerUpEvidence r)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(r);
        w.WriteStartObject();
        w.WriteString("gas_limit", r.GasLimit.ToString(CultureInfo.InvariantCulture));
        w.WriteString("gas_used", r.GasUsed.ToString(CultureInfo.InvariantCulture));
        w.WriteString("payload_hash", r.PayloadHash.ToString());
        w.WriteString("builder", r.Builder.ToString());
        w.WriteString("received_at_ms", r.ReceivedAtMs.ToString(CultureInfo.InvariantCulture));
        w.WriteString("builder_signature", r.BuilderSignature.ToString());
        w.WriteStartArray("proof");
        foreach (var p in r.Proof) w.WriteStringValue(p.ToString());
        w.WriteEndArray();
        w.WriteEndObject();
    }

    public static void WriteHeadAnnouncement(Utf8JsonWriter w, HeadAnnouncement a)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(a);
        w.WriteStartObject();
        w.WritePropertyName("header");
        WriteHeader(w, a.Header);
        w.WriteString("builder_signature", a.BuilderSignature.ToString());
        w.WriteString("proposal_signature", a.ProposalSignature.ToString());
        w.WriteString("payload", Hex.Encode(a.Payload));
        WriteSettlementFields(w, a.Settlement);
        w.WriteEndObject();
    }

    public static void WriteBidReceiptResponse(Utf8JsonWriter w, BidReceiptResponse r)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(r);
        w.WriteStartObject();
        w.WriteString("header_hash", r.HeaderHash.ToString());
        w.WriteString("received_at_ms", r.ReceivedAtMs.ToString(CultureInfo.InvariantCulture));
        w.WriteString("relay_signature", r.RelaySignature.ToString());
        w.WriteEndObject();
    }

    /// <summary>Serialises with one of the writers above to UTF-8 bytes.</summary>
    public static byte[] ToUtf8<T>(T value, Action<Utf8JsonWriter, T> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms)) write(w, value);
        return ms.ToArray();
    }

    // ---- plumbing -------------------------------------------------------------------------------------------

    private static ParseResult<T> WithDocument<T>(ReadOnlySpan<byte> utf8Json, Func<JsonElement, ParseResult<T>> parse)
    {
        JsonDocument doc;
        try
        {
            // JsonDocument.Parse needs memory, not a span; one copy of the body is the price of never throwing.
            doc = JsonDocument.Parse(utf8Json.ToArray(), s_docOptions);
        }
        catch (JsonException ex)
        {
            return ParseResult<T>.Fail(ErrorCodes.Malformed, $"invalid JSON: {ex.Message}");
        }
        catch (ArgumentException ex)
        {
            return ParseResult<T>.Fail(ErrorCodes.Malformed, $"invalid JSON: {ex.Message}");
        }
        using (doc)
        {
            try
            {
                return parse(doc.RootElement);
            }
            catch (Exception ex) when (ex is InvalidOperationException or FormatException or OverflowException)
            {
                return ParseResult<T>.Fail(ErrorCodes.Malformed, ex.Message);
            }
        }
    }

    private static string Name(string path) => path.Length == 0 ? "body" : path;

    /// <summary>Reads one JSON object with a fixed set of required fields.</summary>
    private readonly struct ObjectReader
    {
        private readonly string _path;
        private readonly Dictionary<string, JsonElement> _fields;

        public ObjectReader(JsonElement element, string path, string[] names, string[]? optional = null)
        {
            _path = path;
            _fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            Error = null;
            if (element.ValueKind != JsonValueKind.Object)
            {
                Error = Fail(path.Length == 0 ? $"body: expected a JSON object, got {Kind(element)}" : $"{path}: expected an object, got {Kind(element)}");
                return;
            }
            foreach (var p in element.EnumerateObject())
            {
                if (Array.IndexOf(names, p.Name) < 0 && (optional is null || Array.IndexOf(optional, p.Name) < 0))
                {
                    Error = Fail($"unknown field \"{Join(path, p.Name)}\"");
                    return;
                }
                if (!_fields.TryAdd(p.Name, p.Value))
                {
                    Error = Fail($"duplicate field \"{Join(path, p.Name)}\"");
                    return;
                }
            }
            foreach (var n in names)
            {
                if (!_fields.ContainsKey(n))
                {
                    Error = Fail($"missing field {Join(path, n)}");
                    return;
                }
            }
        }

        public ProtocolError? Error { get; }

        public JsonElement Get(string name) => _fields[name];

        public bool Has(string name) => _fields.ContainsKey(name);

        /// <summary>True in <paramref name="present"/> when every one of the fields is there, false when none is; an error otherwise.</summary>
        public bool AllOrNone(string[] names, out bool present, [NotNullWhen(false)] out ProtocolError? error)
        {
            var n = 0;
            foreach (var name in names) if (_fields.ContainsKey(name)) n++;
            present = n == names.Length;
            var fields = _fields;
            var path = _path;
            error = n == 0 || present ? null : Fail($"{string.Join(", ", names)} go together: missing {string.Join(", ", names.Where(x => !fields.ContainsKey(x)).Select(x => Join(path, x)))}");
            return error is null;
        }

        private bool String(string name, out string text, [NotNullWhen(false)] out ProtocolError? error)
        {
            var e = _fields[name];
            if (e.ValueKind != JsonValueKind.String)
            {
                text = "";
                error = Fail($"{Join(_path, name)}: expected a string, got {Kind(e)}");
                return false;
            }
            text = e.GetString()!;
            error = null;
            return true;
        }

        public bool UInt64(string name, out ulong value, [NotNullWhen(false)] out ProtocolError? error)
        {
            value = 0;
            var e = _fields[name];
            if (e.ValueKind == JsonValueKind.Number)
            {
                error = Fail($"{Join(_path, name)}: expected a decimal string, got a JSON number");
                return false;
            }
            if (!String(name, out var text, out error)) return false;
            if (!TryParseUInt64(text, out value, out var msg)) { error = Fail($"{Join(_path, name)}: {msg}"); return false; }
            return true;
        }

        public bool UInt256(string name, out BigInteger value, [NotNullWhen(false)] out ProtocolError? error)
        {
            value = BigInteger.Zero;
            var e = _fields[name];
            if (e.ValueKind == JsonValueKind.Number)
            {
                error = Fail($"{Join(_path, name)}: expected a decimal string, got a JSON number");
                return false;
            }
            if (!String(name, out var text, out error)) return false;
            if (!TryParseUInt256(text, out value, out var msg)) { error = Fail($"{Join(_path, name)}: {msg}"); return false; }
            return true;
        }

        public bool Hash(string name, out Hash32 value, [NotNullWhen(false)] out ProtocolError? error)
        {
            value = default;
            if (!String(name, out var text, out error)) return false;
            if (!Hex.TryDecodeFixed(text, Hash32.Length, out var bytes, out var msg)) { error = Fail($"{Join(_path, name)}: {msg}"); return false; }
            value = Hash32.FromBytes(bytes);
            return true;
        }

        public bool Address(string name, out Address value, [NotNullWhen(false)] out ProtocolError? error)
        {
            value = default;
            if (!String(name, out var text, out error)) return false;
            if (!Hex.TryDecodeFixed(text, PbsMarket.Core.Address.Length, out var bytes, out var msg)) { error = Fail($"{Join(_path, name)}: {msg}"); return false; }
            value = PbsMarket.Core.Address.FromBytes(bytes);
            return true;
        }

        public bool Signature(string name, out Signature value, [NotNullWhen(false)] out ProtocolError? error)
        {
            value = default;
            if (!String(name, out var text, out error)) return false;
            if (!PbsMarket.Core.Signature.TryParse(text, out value, out var msg)) { error = Fail($"{Join(_path, name)}: {msg}"); return false; }
            return true;
        }

        public bool Payload(string name, WireLimits limits, out byte[] value, [NotNullWhen(false)] out ProtocolError? error)
        {
            value = [];
            if (!String(name, out var text, out error)) return false;
            if (text.Length >= 2 && (text.Length - 2) / 2 > limits.MaxPayloadBytes)
            {
                error = new ProtocolError(ErrorCodes.PayloadTooLarge, $"{Join(_path, name)}: {(text.Length - 2) / 2} bytes exceeds the limit of {limits.MaxPayloadBytes}");
                return false;
            }
            if (!Hex.TryDecode(text, out var bytes, out var msg)) { error = Fail($"{Join(_path, name)}: {msg}"); return false; }
            value = bytes;
            return true;
        }

        private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";
    }

    private static ProtocolError Fail(string message) => new(ErrorCodes.Malformed, message);

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => e.ValueKind.ToString(),
    };
}
