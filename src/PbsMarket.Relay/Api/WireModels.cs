using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PbsMarket.Core;

namespace PbsMarket.Relay.Api;

/// <summary>One accepted bid as revealed once its auction closed.</summary>
/// <param name="Fees">What the block's fees pay the builder, measured by the bid's simulation (absent when bids are not simulated).</param>
/// <param name="Simulation">The bid's simulation verdict: <c>valid</c>, the code its block failed with (the bid then took no part
/// in the auction), or absent when it was not simulated (bids not simulated at all, or an optimistic bid the close did not need).</param>
public sealed record BidView(Hash32 HeaderHash, Address Builder, BigInteger Value, ulong GasUsed, int TxCount, ulong ReceivedAtMs, BigInteger? Fees = null,
    string? Simulation = null);

public sealed record WinnerView(Hash32 HeaderHash, Address Builder, BigInteger Value);

/// <summary>The runner-up evidence of a second-price result (its builder's own signed Header fields, receipt time, proof).</summary>
public sealed record RunnerUpView(ulong GasLimit, ulong GasUsed, Hash32 PayloadHash, Address Builder, ulong ReceivedAtMs, string BuilderSignature, IReadOnlyList<Hash32> Proof)
{
    public static RunnerUpView From(RunnerUpEvidence e) =>
        new(e.GasLimit, e.GasUsed, e.PayloadHash, e.Builder, e.ReceivedAtMs, e.BuilderSignature.ToString(), e.Proof);

    public RunnerUpEvidence ToEvidence() => new(GasLimit, GasUsed, PayloadHash, Builder, ReceivedAtMs, Signature.Parse(BuilderSignature), Proof);
}

/// <summary>A slot as the data API shows it. Open slots carry nothing about their bids.</summary>
public sealed record SlotView
{
    public required ulong Slot { get; init; }
    public required Address Proposer { get; init; }
    public required string Status { get; init; }
    public Hash32? ParentHash { get; init; }
    public ulong? Number { get; init; }
    public ulong? ClosesAtMs { get; init; }
    public ulong? ClosedAtMs { get; init; }
    public IReadOnlyList<BidView>? Bids { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public WinnerView? Winner { get; init; }
    public BigInteger? Price { get; init; }
    public Hash32? BidsRoot { get; init; }
    public uint? BidCount { get; init; }
    public string? RelaySignature { get; init; }
    /// <summary>The relay that signed the result (protocol version 2: what the proposer's Proposal names).</summary>
    public Address? Relay { get; init; }
    /// <summary>Second price above the reserve: the evidence L1 checks the price against.</summary>
    public RunnerUpView? RunnerUp { get; init; }
    public Hash32? ProposedHeaderHash { get; init; }
    public string? L1TxHash { get; init; }
    public string? MissedReason { get; init; }
}

/// <summary>An open (or not yet closed) slot: who proposes it and when it closes, nothing more.</summary>
public sealed record OpenSlotView(ulong Slot, Address Proposer, string Status, Hash32 ParentHash, ulong Number, ulong ClosesAtMs);

public static class SlotViewSettlement
{
    /// <summary>The settlement L1 needs for the slot's winning header (null when the slot had no winner).</summary>
    public static Settlement? SettlementOf(this SlotView v) =>
        v.Winner is null || v.RelaySignature is null ? null
            : new Settlement(v.Price ?? 0, v.BidsRoot ?? Hash32.Zero, v.BidCount ?? 0, Signature.Parse(v.RelaySignature), v.RunnerUp?.ToEvidence());
}

public sealed record ProofView(ulong Slot, Hash32 HeaderHash, ulong ReceivedAtMs, Hash32 Leaf, Hash32 BidsRoot, IReadOnlyList<Hash32> Proof);

/// <summary>The JSON conventions of the protocol: snake_case, integers as decimal strings, 0x hex.</summary>
public static class WireJson
{
    public static readonly JsonSerializerOptions Options = Create();

    static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            NumberHandling = JsonNumberHandling.WriteAsString | JsonNumberHandling.AllowReadingFromString,
        };
        o.Converters.Add(new Hash32Converter());
        o.Converters.Add(new AddressConverter());
        o.Converters.Add(new BigIntegerConverter());
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }

    sealed class Hash32Converter : JsonConverter<Hash32>
    {
        public override Hash32 Read(ref Utf8JsonReader r, Type t, JsonSerializerOptions o) =>
            Hash32.TryParse(r.GetString(), out var h) ? h : throw new JsonException("bad bytes32");
        public override void Write(Utf8JsonWriter w, Hash32 v, JsonSerializerOptions o) => w.WriteStringValue(v.ToString());
    }

    sealed class AddressConverter : JsonConverter<Address>
    {
        public override Address Read(ref Utf8JsonReader r, Type t, JsonSerializerOptions o) =>
            Address.TryParse(r.GetString(), out var a) ? a : throw new JsonException("bad address");
        public override void Write(Utf8JsonWriter w, Address v, JsonSerializerOptions o) => w.WriteStringValue(v.ToString());
    }

    sealed class BigIntegerConverter : JsonConverter<BigInteger>
    {
        public override BigInteger Read(ref Utf8JsonReader r, Type t, JsonSerializerOptions o) =>
            BigInteger.Parse(r.GetString()!, NumberStyles.None, CultureInfo.InvariantCulture);
        public override void Write(Utf8JsonWriter w, BigInteger v, JsonSerializerOptions o) =>
            w.WriteStringValue(v.ToString(CultureInfo.InvariantCulture));
    }
}
