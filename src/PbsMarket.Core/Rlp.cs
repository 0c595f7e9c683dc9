using System.Numerics;

namespace PbsMarket.Core;

/// <summary>One RLP item inside a buffer.</summary>
internal readonly record struct RlpItem(bool IsList, int Start, int PayloadStart, int PayloadLength)
{
    public int End => PayloadStart + PayloadLength;
    public int EncodedLength => End - Start;
}

/// <summary>A strict (canonical-only) RLP reader and a minimal writer.</summary>
internal static class Rlp
{
    /// <summary>Reads the item at <paramref name="offset"/>, which must end at or before <paramref name="limit"/>.</summary>
    public static bool TryRead(ReadOnlySpan<byte> data, int offset, int limit, out RlpItem item, out string error)
    {
        item = default;
        if (offset >= limit) { error = "unexpected end of data"; return false; }
        var b = data[offset];
        int headerLen, payloadLen;
        bool isList;
        if (b < 0x80) { item = new RlpItem(false, offset, offset, 1); error = ""; return true; }
        if (b <= 0xb7)
        {
            isList = false; headerLen = 1; payloadLen = b - 0x80;
            if (payloadLen == 1)
            {
                if (offset + 1 >= limit) { error = "unexpected end of data"; return false; }
                if (data[offset + 1] < 0x80) { error = $"non-canonical single byte at offset {offset}"; return false; }
            }
        }
        else if (b <= 0xbf)
        {
            isList = false;
            if (!ReadLongLength(data, offset, limit, b - 0xb7, out headerLen, out payloadLen, out error)) return false;
        }
        else if (b <= 0xf7) { isList = true; headerLen = 1; payloadLen = b - 0xc0; }
        else
        {
            isList = true;
            if (!ReadLongLength(data, offset, limit, b - 0xf7, out headerLen, out payloadLen, out error)) return false;
        }
        if ((long)offset + headerLen + payloadLen > limit) { error = $"item at offset {offset} runs past the end of its container"; return false; }
        item = new RlpItem(isList, offset, offset + headerLen, payloadLen);
        error = "";
        return true;
    }

    private static bool ReadLongLength(ReadOnlySpan<byte> data, int offset, int limit, int lenOfLen, out int headerLen, out int payloadLen, out string error)
    {
        headerLen = 1 + lenOfLen;
        payloadLen = 0;
        if (offset + headerLen > limit) { error = "unexpected end of data"; return false; }
        if (data[offset + 1] == 0) { error = $"non-canonical length at offset {offset}"; return false; }
        if (lenOfLen > 4) { error = $"length at offset {offset} is too large"; return false; }
        long len = 0;
        for (var i = 0; i < lenOfLen; i++) len = (len << 8) | data[offset + 1 + i];
        if (len < 56) { error = $"non-canonical long length at offset {offset}"; return false; }
        if (len > int.MaxValue) { error = $"length at offset {offset} is too large"; return false; }
        payloadLen = (int)len;
        error = "";
        return true;
    }

    /// <summary>Reads the children of a list item.</summary>
    public static bool TryReadList(ReadOnlySpan<byte> data, RlpItem list, List<RlpItem> items, out string error)
    {
        items.Clear();
        var pos = list.PayloadStart;
        while (pos < list.End)
        {
            if (!TryRead(data, pos, list.End, out var child, out error)) return false;
            items.Add(child);
            pos = child.End;
        }
        error = "";
        return true;
    }

    public static byte[] EncodeHeader(int payloadLength, bool isList)
    {
        var small = isList ? 0xc0 : 0x80;
        var big = isList ? 0xf7 : 0xb7;
        if (payloadLength < 56) return [(byte)(small + payloadLength)];
        var lenBytes = new BigInteger(payloadLength).ToByteArray(isUnsigned: true, isBigEndian: true);
        var h = new byte[1 + lenBytes.Length];
        h[0] = (byte)(big + lenBytes.Length);
        lenBytes.CopyTo(h, 1);
        return h;
    }

    public static byte[] EncodeString(ReadOnlySpan<byte> s)
    {
        if (s.Length == 1 && s[0] < 0x80) return [s[0]];
        var h = EncodeHeader(s.Length, false);
        var r = new byte[h.Length + s.Length];
        h.CopyTo(r, 0);
        s.CopyTo(r.AsSpan(h.Length));
        return r;
    }

    public static byte[] EncodeUInt(BigInteger v) => EncodeString(v.IsZero ? [] : v.ToByteArray(isUnsigned: true, isBigEndian: true));

    public static byte[] WrapList(ReadOnlySpan<byte> concatenatedItems)
    {
        var h = EncodeHeader(concatenatedItems.Length, true);
        var r = new byte[h.Length + concatenatedItems.Length];
        h.CopyTo(r, 0);
        concatenatedItems.CopyTo(r.AsSpan(h.Length));
        return r;
    }
}
