using System.Numerics;

namespace PbsMarket.Core;

/// <summary>One decoded L2 transaction. <see cref="To"/> is null for contract creation; TxHash = keccak(raw EIP-2718 bytes).</summary>
public sealed record DecodedTx(byte Type, BigInteger ChainId, ulong Nonce, ulong GasLimit, Address? To, BigInteger Value, Hash32 TxHash)
{
    /// <summary>The most the sender pays per gas: <c>max_fee_per_gas</c> (type 2), or the gas price (legacy, type 1).</summary>
    public BigInteger MaxFeePerGas { get; init; }
    /// <summary>The tip cap: <c>max_priority_fee_per_gas</c> (type 2), or the gas price (legacy, type 1).</summary>
    public BigInteger MaxPriorityFeePerGas { get; init; }
    /// <summary>The call data (or init code for a creation).</summary>
    public ReadOnlyMemory<byte> Data { get; init; }
    /// <summary>The EIP-2930 access list (empty for legacy transactions).</summary>
    public IReadOnlyList<AccessListEntry> AccessList { get; init; } = [];
}

/// <summary>One entry of an EIP-2930 access list.</summary>
public sealed record AccessListEntry(Address Address, IReadOnlyList<Hash32> StorageKeys);

/// <summary>Limits on a block payload.</summary>
public sealed record PayloadLimits(int MaxBytes = PayloadLimits.DefaultMaxBytes, int MaxTxs = PayloadLimits.DefaultMaxTxs)
{
    public const int DefaultMaxBytes = 1 << 20;
    public const int DefaultMaxTxs = 10_000;
    public static PayloadLimits Default { get; } = new();
}

/// <summary>The outcome of decoding a payload: its transactions, or an error.</summary>
public sealed class PayloadCheck
{
    private PayloadCheck(IReadOnlyList<DecodedTx> txs, ProtocolError? error)
    {
        Transactions = txs;
        Error = error;
    }

    internal static PayloadCheck Ok(IReadOnlyList<DecodedTx> txs) => new(txs, null);
    internal static PayloadCheck Fail(string code, string message) => new([], new ProtocolError(code, message));

    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(false, nameof(Error))]
    public bool IsOk => Error is null;
    public IReadOnlyList<DecodedTx> Transactions { get; }
    public ProtocolError? Error { get; }

    /// <summary>Sum of the transactions' gas limits (saturating).</summary>
    public ulong TotalGasLimit
    {
        get
        {
            ulong sum = 0;
            foreach (var t in Transactions) sum = sum > ulong.MaxValue - t.GasLimit ? ulong.MaxValue : sum + t.GasLimit;
            return sum;
        }
    }

    public override string ToString() => IsOk ? $"Ok({Transactions.Count} txs)" : $"Fail({Error})";
}

/// <summary>
/// The block payload: the RLP list of the block's signed transactions in block order, encoded as in an Ethereum
/// block body: a legacy transaction is embedded as its RLP list, a typed transaction (EIP-2718) as the RLP byte
/// string of <c>type || rlp(fields)</c>. <c>0xc0</c> is the empty block. Supported: legacy with EIP-155 chain id,
/// type 1 (EIP-2930), type 2 (EIP-1559).
/// </summary>
public static class PayloadCodec
{
    public static readonly byte[] Empty = [0xc0];

    /// <summary>Encodes raw signed transactions (legacy RLP lists or typed <c>type || rlp</c> bytes).</summary>
    public static byte[] Encode(IEnumerable<byte[]> rawTxs)
    {
        ArgumentNullException.ThrowIfNull(rawTxs);
        using var body = new MemoryStream();
        foreach (var tx in rawTxs)
        {
            ArgumentNullException.ThrowIfNull(tx);
            if (tx.Length == 0) throw new ArgumentException("empty transaction", nameof(rawTxs));
            if (tx[0] >= 0xc0) body.Write(tx); // legacy: the list itself
            else body.Write(Rlp.EncodeString(tx)); // typed: a byte string
        }
        return Rlp.WrapList(body.ToArray());
    }

    /// <summary>Splits a payload into raw transactions (the form <see cref="Encode"/> takes) without validating them.</summary>
    public static IReadOnlyList<byte[]>? Split(ReadOnlySpan<byte> payload)
    {
        if (!Rlp.TryRead(payload, 0, payload.Length, out var top, out _) || !top.IsList || top.End != payload.Length) return null;
        var items = new List<RlpItem>();
        if (!Rlp.TryReadList(payload, top, items, out _)) return null;
        var result = new List<byte[]>(items.Count);
        foreach (var i in items) result.Add((i.IsList ? payload[i.Start..i.End] : payload[i.PayloadStart..i.End]).ToArray());
        return result;
    }

    public static PayloadCheck Decode(ReadOnlySpan<byte> payload, BigInteger l2ChainId, PayloadLimits? limits = null)
    {
        limits ??= PayloadLimits.Default;
        if (payload.Length > limits.MaxBytes)
            return PayloadCheck.Fail(ErrorCodes.PayloadTooLarge, $"payload: {payload.Length} bytes exceeds the limit of {limits.MaxBytes}");
        if (payload.Length == 0) return PayloadCheck.Fail(ErrorCodes.InvalidPayload, "payload: empty (the empty block is 0xc0)");
        if (!Rlp.TryRead(payload, 0, payload.Length, out var top, out var error))
            return PayloadCheck.Fail(ErrorCodes.InvalidPayload, $"payload: {error}");
        if (!top.IsList) return PayloadCheck.Fail(ErrorCodes.InvalidPayload, "payload: not an RLP list");
        if (top.End != payload.Length)
            return PayloadCheck.Fail(ErrorCodes.InvalidPayload, $"payload: {payload.Length - top.End} trailing bytes after the transaction list");

        var txs = new List<DecodedTx>();
        var fields = new List<RlpItem>();
        var pos = top.PayloadStart;
        while (pos < top.End)
        {
            var index = txs.Count;
            if (index >= limits.MaxTxs)
                return PayloadCheck.Fail(ErrorCodes.PayloadTooLarge, $"payload: more than {limits.MaxTxs} transactions");
            if (!Rlp.TryRead(payload, pos, top.End, out var item, out error))
                return PayloadCheck.Fail(ErrorCodes.InvalidPayload, $"transaction {index}: {error}");
            pos = item.End;
            var tx = DecodeItem(payload, item, index, fields, out var err);
            if (tx is null) return PayloadCheck.Fail(err!.Code, err.Message);
            if (tx.ChainId != l2ChainId)
                return PayloadCheck.Fail(ErrorCodes.WrongChainId, $"transaction {index}: chain id {tx.ChainId}, expected {l2ChainId}");
            txs.Add(tx);
        }
        return PayloadCheck.Ok(txs);
    }

    /// <summary>Decodes one raw transaction (legacy RLP list or typed bytes); null with an error if invalid.</summary>
    public static DecodedTx? DecodeTransaction(ReadOnlySpan<byte> rawTx, out ProtocolError? error)
    {
        error = null;
        if (rawTx.Length == 0) { error = new(ErrorCodes.InvalidPayload, "transaction: empty"); return null; }
        if (rawTx[0] >= 0xc0)
        {
            if (!Rlp.TryRead(rawTx, 0, rawTx.Length, out var list, out var e) || list.End != rawTx.Length)
            {
                error = new(ErrorCodes.InvalidPayload, $"transaction: {(e.Length > 0 ? e : "trailing bytes")}");
                return null;
            }
            return DecodeItem(rawTx, list, 0, [], out error);
        }
        var wrapped = Rlp.EncodeString(rawTx);
        Rlp.TryRead(wrapped, 0, wrapped.Length, out var str, out _);
        return DecodeItem(wrapped, str, 0, [], out error);
    }

    private static DecodedTx? DecodeItem(ReadOnlySpan<byte> data, RlpItem item, int index, List<RlpItem> fields, out ProtocolError? error)
    {
        error = null;
        string where = $"transaction {index}";
        byte type;
        ReadOnlySpan<byte> raw;
        RlpItem body;
        if (item.IsList)
        {
            type = 0;
            raw = data[item.Start..item.End];
            body = item; // the legacy list itself
        }
        else
        {
            if (item.PayloadLength == 0) { error = Invalid($"{where}: empty byte string"); return null; }
            type = data[item.PayloadStart];
            if (type >= 0xc0) { error = Invalid($"{where}: a legacy transaction must be embedded as an RLP list, not wrapped in a byte string"); return null; }
            if (type is not (1 or 2)) { error = Invalid($"{where}: unsupported transaction type 0x{type:x2}"); return null; }
            raw = data[item.PayloadStart..item.End];
            var start = item.PayloadStart + 1;
            if (!Rlp.TryRead(data, start, item.End, out body, out var e)) { error = Invalid($"{where}: {e}"); return null; }
            if (!body.IsList) { error = Invalid($"{where}: type {type} body is not an RLP list"); return null; }
            if (body.End != item.End) { error = Invalid($"{where}: trailing bytes after the type {type} body"); return null; }
        }
        if (!Rlp.TryReadList(data, body, fields, out var err)) { error = Invalid($"{where}: {err}"); return null; }

        var expected = type switch { 0 => 9, 1 => 11, _ => 12 };
        if (fields.Count != expected) { error = Invalid($"{where}: type {type} has {expected} fields, got {fields.Count}"); return null; }

        // Field positions per type.
        int nonceAt, gasAt, toAt, valueAt, dataAt;
        if (type == 0) { nonceAt = 0; gasAt = 2; toAt = 3; valueAt = 4; dataAt = 5; }
        else if (type == 1) { nonceAt = 1; gasAt = 3; toAt = 4; valueAt = 5; dataAt = 6; }
        else { nonceAt = 1; gasAt = 4; toAt = 5; valueAt = 6; dataAt = 7; }

        if (!UInt(data, fields[nonceAt], 8, out var nonce, out err)) { error = Invalid($"{where}: nonce: {err}"); return null; }
        if (!UInt(data, fields[gasAt], 8, out var gas, out err)) { error = Invalid($"{where}: gas limit: {err}"); return null; }
        if (!UInt(data, fields[valueAt], 32, out var value, out err)) { error = Invalid($"{where}: value: {err}"); return null; }
        var priceFields = type switch { 0 => new[] { 1 }, 1 => [2], _ => [2, 3] };
        var prices = new BigInteger[priceFields.Length];
        for (var p = 0; p < priceFields.Length; p++)
        {
            if (!UInt(data, fields[priceFields[p]], 32, out prices[p], out err)) { error = Invalid($"{where}: fee field: {err}"); return null; }
        }
        var toItem = fields[toAt];
        if (toItem.IsList || (toItem.PayloadLength != 0 && toItem.PayloadLength != 20)) { error = Invalid($"{where}: to: expected 0 or 20 bytes"); return null; }
        Address? to = toItem.PayloadLength == 20 ? Address.FromBytes(data.Slice(toItem.PayloadStart, 20)) : null;
        if (fields[dataAt].IsList) { error = Invalid($"{where}: data: expected a byte string"); return null; }

        BigInteger chainId;
        List<AccessListEntry>? accessList = null;
        if (type == 0)
        {
            if (!UInt(data, fields[6], 32, out var v, out err)) { error = Invalid($"{where}: v: {err}"); return null; }
            if (v < 35) { error = new ProtocolError(ErrorCodes.WrongChainId, $"{where}: legacy transaction without EIP-155 chain id (v = {v})"); return null; }
            chainId = (v - 35) / 2;
        }
        else
        {
            if (!UInt(data, fields[0], 32, out chainId, out err)) { error = Invalid($"{where}: chain id: {err}"); return null; }
            if (!UInt(data, fields[^3], 1, out var parity, out err) || parity > 1) { error = Invalid($"{where}: y parity must be 0 or 1"); return null; }
            accessList = [];
            if (!CheckAccessList(data, fields[^4], out err, accessList)) { error = Invalid($"{where}: access list: {err}"); return null; }
        }
        if (!Scalar(data, fields[^2], out var r, out err) || !Scalar(data, fields[^1], out var s, out err))
        {
            error = Invalid($"{where}: signature: {err}");
            return null;
        }
        if (!Signature.CheckScalars(r, s, out err)) { error = Invalid($"{where}: signature: {err}"); return null; }

        return new DecodedTx(type, chainId, (ulong)nonce, (ulong)gas, to, value, Keccak.Hash(raw))
        {
            // type 2: [chainId, nonce, maxPriorityFee, maxFee, ...]; legacy and type 1 have one gas price
            MaxPriorityFeePerGas = prices[0],
            MaxFeePerGas = prices[^1],
            Data = data.Slice(fields[dataAt].PayloadStart, fields[dataAt].PayloadLength).ToArray(),
            AccessList = accessList ?? [],
        };
    }

    /// <summary>Recovers the sender of a raw transaction (legacy RLP list or typed bytes). Not for the hot path.</summary>
    public static Address RecoverSender(ReadOnlySpan<byte> rawTx)
    {
        var tx = DecodeTransaction(rawTx, out var error) ?? throw new FormatException(error!.Message);
        byte[] buf;
        RlpItem body;
        if (tx.Type == 0)
        {
            buf = rawTx.ToArray();
            Rlp.TryRead(buf, 0, buf.Length, out body, out _);
        }
        else
        {
            buf = rawTx.ToArray();
            Rlp.TryRead(buf, 1, buf.Length, out body, out _);
        }
        var fields = new List<RlpItem>();
        Rlp.TryReadList(buf, body, fields, out _);
        var unsignedCount = fields.Count - 3;
        using var ms = new MemoryStream();
        for (var i = 0; i < unsignedCount; i++) ms.Write(buf, fields[i].Start, fields[i].EncodedLength);
        int recId;
        if (tx.Type == 0)
        {
            ms.Write(Rlp.EncodeUInt(tx.ChainId));
            ms.Write([0x80, 0x80]);
            UInt(buf, fields[6], 32, out var v, out _);
            recId = (int)(v - (tx.ChainId * 2 + 35));
        }
        else
        {
            UInt(buf, fields[^3], 1, out var parity, out _);
            recId = (int)parity;
        }
        var list = Rlp.WrapList(ms.ToArray());
        var preimage = tx.Type == 0 ? list : [tx.Type, .. list];
        Span<byte> r = stackalloc byte[32];
        Span<byte> s = stackalloc byte[32];
        Scalar(buf, fields[^2], out var rb, out _);
        Scalar(buf, fields[^1], out var sb, out _);
        rb.CopyTo(r);
        sb.CopyTo(s);
        var sig = Signature.FromParts(r, s, recId);
        if (!SignatureRecovery.TryRecover(Keccak.Hash(preimage), sig, out var sender)) throw new FormatException("signature does not recover");
        return sender;
    }

    private static ProtocolError Invalid(string message) => new(ErrorCodes.InvalidPayload, message);

    /// <summary>A canonical RLP unsigned integer of at most <paramref name="maxBytes"/> bytes.</summary>
    private static bool UInt(ReadOnlySpan<byte> data, RlpItem item, int maxBytes, out BigInteger value, out string error)
    {
        value = BigInteger.Zero;
        if (item.IsList) { error = "expected an integer, got a list"; return false; }
        var bytes = data.Slice(item.PayloadStart, item.PayloadLength);
        if (bytes.Length > maxBytes) { error = $"more than {maxBytes} bytes"; return false; }
        if (bytes.Length > 0 && bytes[0] == 0) { error = "leading zero bytes"; return false; }
        value = new BigInteger(bytes, isUnsigned: true, isBigEndian: true);
        error = "";
        return true;
    }

    /// <summary>r or s: an integer of at most 32 bytes, returned left-padded to 32 bytes.</summary>
    private static bool Scalar(ReadOnlySpan<byte> data, RlpItem item, out byte[] padded, out string error)
    {
        padded = new byte[32];
        if (!UInt(data, item, 32, out _, out error)) { error = "r/s: " + error; return false; }
        data.Slice(item.PayloadStart, item.PayloadLength).CopyTo(padded.AsSpan(32 - item.PayloadLength));
        return true;
    }

    private static bool CheckAccessList(ReadOnlySpan<byte> data, RlpItem list, out string error, List<AccessListEntry> parsed)
    {
        if (!list.IsList) { error = "expected a list"; return false; }
        var entries = new List<RlpItem>();
        if (!Rlp.TryReadList(data, list, entries, out error)) return false;
        var pair = new List<RlpItem>();
        var keys = new List<RlpItem>();
        foreach (var entry in entries)
        {
            if (!entry.IsList || !Rlp.TryReadList(data, entry, pair, out _) || pair.Count != 2) { error = "entry is not [address, storageKeys]"; return false; }
            if (pair[0].IsList || pair[0].PayloadLength != 20) { error = "address is not 20 bytes"; return false; }
            if (!pair[1].IsList || !Rlp.TryReadList(data, pair[1], keys, out _)) { error = "storage keys are not a list"; return false; }
            var storageKeys = new List<Hash32>(keys.Count);
            foreach (var k in keys)
            {
                if (k.IsList || k.PayloadLength != 32) { error = "storage key is not 32 bytes"; return false; }
                storageKeys.Add(Hash32.FromBytes(data.Slice(k.PayloadStart, 32)));
            }
            parsed.Add(new AccessListEntry(Address.FromBytes(data.Slice(pair[0].PayloadStart, 20)), storageKeys));
        }
        error = "";
        return true;
    }
}

/// <summary>
/// Gas rules for a block. <see cref="CheckLimits"/> is the protocol rule (gasUsed &lt;= gasLimit &lt;= maxGasLimit,
/// code gas_limit_exceeded); <see cref="CheckAgainstTransactions"/> adds a plausibility rule the relay may apply
/// (21000 * txCount &lt;= gasUsed &lt;= sum of the transactions' gas limits, code invalid_gas).
/// </summary>
public static class GasCheck
{
    public const ulong IntrinsicGas = 21_000;

    public static ProtocolError? CheckLimits(ulong gasUsed, ulong gasLimit, ulong maxGasLimit)
    {
        if (gasLimit > maxGasLimit) return new(ErrorCodes.GasLimitExceeded, $"gas_limit {gasLimit} exceeds the maximum {maxGasLimit}");
        if (gasUsed > gasLimit) return new(ErrorCodes.GasLimitExceeded, $"gas_used {gasUsed} exceeds gas_limit {gasLimit}");
        return null;
    }

    public static ProtocolError? CheckAgainstTransactions(ulong gasUsed, IReadOnlyList<DecodedTx> txs)
    {
        ArgumentNullException.ThrowIfNull(txs);
        var min = IntrinsicGas * (ulong)txs.Count;
        if (gasUsed < min) return new(ErrorCodes.InvalidGas, $"gas_used {gasUsed} is below {min} (21000 per transaction, {txs.Count} transactions)");
        BigInteger sum = BigInteger.Zero;
        foreach (var t in txs) sum += t.GasLimit;
        if (gasUsed > sum) return new(ErrorCodes.InvalidGas, $"gas_used {gasUsed} exceeds the transactions' total gas limit {sum}");
        return null;
    }

    /// <summary>Both rules for a header and its decoded payload.</summary>
    public static ProtocolError? Check(Header header, IReadOnlyList<DecodedTx> txs, ulong maxGasLimit)
    {
        ArgumentNullException.ThrowIfNull(header);
        return CheckLimits(header.GasUsed, header.GasLimit, maxGasLimit) ?? CheckAgainstTransactions(header.GasUsed, txs);
    }
}
