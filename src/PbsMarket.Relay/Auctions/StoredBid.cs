using System.Text;
using System.Text.Json;
using PbsMarket.Core;

namespace PbsMarket.Relay.Auctions;

/// <summary>An accepted bid as the relay keeps it: the signed header, its receipt time and order.</summary>
public sealed record StoredBid(Header Header, Hash32 HeaderHash, Signature Signature, int TxCount, ulong ReceivedAtMs, long Sequence)
{
    /// <summary>What the block's fees pay its builder (the coinbase), as the bid's simulation measured it; null unsimulated.
    /// A bid stored with fees was simulated valid before its receipt (pessimistic simulation).</summary>
    public System.Numerics.BigInteger? Fees { get; init; }

    /// <summary>The simulation's verdict as the close saw it: <c>valid</c>, a failure code, or null (not simulated). Set on the
    /// bids of a closed auction only (docs/l2.md, "Optimistic simulation").</summary>
    public string? Simulation { get; init; }

    /// <summary>Accepted before its simulation (optimistic): it may win or set the price only with a stored valid verdict.</summary>
    public bool Optimistic { get; init; }

    /// <summary>The bid's leaf in the bids root (two keccaks), computed once with the record.</summary>
    public Hash32 Leaf { get; } = BidsMerkle.LeafHash(HeaderHash, ReceivedAtMs);

    public AcceptedBid ToAccepted() => new(HeaderHash, Header.Builder, Header.Value, ReceivedAtMs, Header.ParentHash, Sequence, Header.GasUsed, TxCount);

    /// <summary>The JSON part of the Redis record (the script prefixes "received_ms|seq|").</summary>
    public static string RecordJson(Header header, Signature signature, int txCount, System.Numerics.BigInteger? fees = null, string? simulation = null,
        bool optimistic = false)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WritePropertyName("header");
            Wire.WriteHeader(w, header);
            w.WriteString("signature", signature.ToString());
            w.WriteNumber("tx_count", txCount);
            if (fees is { } f) w.WriteString("fees", f.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (simulation is not null) w.WriteString("simulation", simulation);
            if (optimistic) w.WriteBoolean("optimistic", true);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Parses "received_ms|seq|json" as stored by the accept script.</summary>
    public static StoredBid FromRecord(string record)
    {
        var first = record.IndexOf('|');
        var second = record.IndexOf('|', first + 1);
        var received = ulong.Parse(record.AsSpan(0, first));
        var seq = long.Parse(record.AsSpan(first + 1, second - first - 1));
        using var doc = JsonDocument.Parse(record.AsMemory(second + 1));
        var root = doc.RootElement;
        var header = Wire.ParseHeader(root.GetProperty("header")).Value;
        var signature = Signature.Parse(root.GetProperty("signature").GetString()!);
        var txCount = root.GetProperty("tx_count").GetInt32();
        System.Numerics.BigInteger? fees = root.TryGetProperty("fees", out var f) ? System.Numerics.BigInteger.Parse(f.GetString()!, System.Globalization.CultureInfo.InvariantCulture) : null;
        var simulation = root.TryGetProperty("simulation", out var sim) ? sim.GetString() : null;
        var optimistic = root.TryGetProperty("optimistic", out var o) && o.ValueKind == JsonValueKind.True;
        return new StoredBid(header, Eip712.HashStruct(header), signature, txCount, received, seq) { Fees = fees, Simulation = simulation, Optimistic = optimistic };
    }

    public static ulong ReceivedAtOf(string record) => ulong.Parse(record.AsSpan(0, record.IndexOf('|')));
}
