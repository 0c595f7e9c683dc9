namespace PbsMarket.Core;

/// <summary>
/// What one L1 transaction can carry, so that the relay never accepts a payload it could not post and the
/// poster never builds a batch a node would refuse. Nodes refuse transactions over 128 KiB (geth's txpool
/// limit); EIP-7825 caps a transaction's gas at 2^24; a block's gas limit caps it further. Sizes are the
/// ABI-encoded calldata of <c>postHeaders</c>, with headroom for the signed envelope; gas is a deliberate
/// over-estimate (EIP-7623's floor of 40 gas per calldata byte, plus each header's checks and transfer).
/// </summary>
public static class L1Limits
{
    public const int MaxTxBytes = 128 * 1024;
    public const ulong MaxTxGas = 1UL << 24;
    /// <summary>Envelope (nonce, fees, signature, access list), selector and the array's head.</summary>
    public const int TxOverheadBytes = 1024;
    /// <summary>Per header: its 11 words, price, bids root, offsets, two 65-byte signatures and the payload's length word.</summary>
    public const int ItemOverheadBytes = 1024;
    public const ulong TxBaseGas = 21_000 + 50_000;
    /// <summary>Per header: two ecrecovers, storage of the header, the escrow transfer, the event.</summary>
    public const ulong ItemBaseGas = 250_000;
    public const ulong GasPerByte = 40;

    static int Padded(int n) => (n + 31) / 32 * 32;

    public static int ItemBytes(int payloadLength) => ItemOverheadBytes + Padded(payloadLength);

    public static ulong ItemGas(int payloadLength) => ItemBaseGas + GasPerByte * (ulong)ItemBytes(payloadLength) + 6 * (ulong)(Padded(payloadLength) / 32);

    /// <summary>The gas one transaction may use: EIP-7825's cap, or the block's gas limit when lower.</summary>
    public static ulong TxGasCap(ulong blockGasLimit) => Math.Min(MaxTxGas, blockGasLimit);

    /// <summary>The largest payload a transaction can carry alone.</summary>
    public static int MaxPostablePayloadBytes(ulong blockGasLimit)
    {
        var bytes = (MaxTxBytes - TxOverheadBytes - ItemOverheadBytes) / 32 * 32;
        while (bytes > 0 && TxBaseGas + ItemGas(bytes) > TxGasCap(blockGasLimit)) bytes -= 32;
        return bytes;
    }

    /// <summary>Null when a payload of this length can be posted; else <c>unpostable</c>.</summary>
    public static ProtocolError? CheckPostable(int payloadLength, ulong blockGasLimit = 30_000_000)
    {
        var max = MaxPostablePayloadBytes(blockGasLimit);
        return payloadLength <= max ? null
            : new(ErrorCodes.Unpostable, $"the payload is {payloadLength} bytes; one L1 transaction can carry at most {max} (128 KiB per transaction, {TxGasCap(blockGasLimit)} gas)");
    }

    /// <summary>Splits items, in order, into batches that each fit one transaction (by bytes, gas and count).</summary>
    public static List<List<T>> Pack<T>(IEnumerable<T> items, Func<T, int> payloadLength, int maxItems, ulong blockGasLimit)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(payloadLength);
        var batches = new List<List<T>>();
        var current = new List<T>();
        long bytes = TxOverheadBytes;
        var gas = TxBaseGas;
        var cap = TxGasCap(blockGasLimit);
        foreach (var item in items)
        {
            var len = payloadLength(item);
            var b = ItemBytes(len);
            var g = ItemGas(len);
            if (current.Count > 0 && (current.Count >= maxItems || bytes + b > MaxTxBytes || gas + g > cap))
            {
                batches.Add(current);
                current = [];
                bytes = TxOverheadBytes;
                gas = TxBaseGas;
            }
            current.Add(item);
            bytes += b;
            gas += g;
        }
        if (current.Count > 0) batches.Add(current);
        return batches;
    }
}
