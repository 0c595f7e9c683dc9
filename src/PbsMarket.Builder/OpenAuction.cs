using System.Globalization;
using System.Text.Json;
using PbsMarket.Core;

namespace PbsMarket.Builder;

/// <summary>The relay's open auction, as GET /relay/v1/builder/auction describes it.</summary>
public sealed record OpenAuction(
    ulong Slot, Hash32 ParentHash, ulong Number, ulong TimestampMs, Address Proposer, ulong GasLimit,
    ulong ClosesAtMs, BigInteger ReservePrice, string PriceRule, BigInteger L2ChainId, Eip712Domain Domain)
{
    public static OpenAuction Parse(JsonElement e)
    {
        static string S(JsonElement x, string name) => x.GetProperty(name).GetString() ?? throw new FormatException($"{name} missing");
        var d = e.GetProperty("domain");
        var domain = new Eip712Domain(S(d, "name"), S(d, "version"), BigInteger.Parse(S(d, "chain_id"), CultureInfo.InvariantCulture), Address.Parse(S(d, "verifying_contract")));
        return new OpenAuction(
            ulong.Parse(S(e, "slot"), CultureInfo.InvariantCulture), Hash32.Parse(S(e, "parent_hash")), ulong.Parse(S(e, "number"), CultureInfo.InvariantCulture),
            ulong.Parse(S(e, "timestamp_ms"), CultureInfo.InvariantCulture), Address.Parse(S(e, "proposer")), ulong.Parse(S(e, "gas_limit"), CultureInfo.InvariantCulture),
            ulong.Parse(S(e, "closes_at_ms"), CultureInfo.InvariantCulture), BigInteger.Parse(S(e, "reserve_price"), CultureInfo.InvariantCulture),
            S(e, "price_rule"), BigInteger.Parse(S(e, "l2_chain_id"), CultureInfo.InvariantCulture), domain);
    }

    /// <summary>A header for this auction with the given block contents and bid value.</summary>
    public Header HeaderFor(Address builder, byte[] payload, ulong gasUsed, BigInteger value, ulong? gasLimit = null) =>
        new(L2ChainId, Slot, Number, ParentHash, TimestampMs, gasLimit ?? GasLimit, gasUsed, Keccak.Hash(payload), builder, Proposer, value);
}
