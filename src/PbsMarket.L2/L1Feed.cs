using System.Text.Json;
using System.Text.Json.Nodes;
using Nethereum.Contracts;
using PbsMarket.Core;
using PbsMarket.L1;

namespace PbsMarket.L2;

/// <summary>A header L1 holds, with the payload its posting transaction carried.</summary>
public sealed record PostedBlock(Header Header, Hash32 HeaderHash, byte[] Payload, ulong L1Block, string TxHash);

/// <summary>
/// Reads the chain as L1 holds it: every <c>HeaderPosted</c> of the inbox in L1 order, each with its payload taken from
/// the calldata of the transaction that posted it (a direct <c>postHeaders</c> call, or, when a contract made the call,
/// the call frame found with <c>debug_traceTransaction</c>'s call tracer).
/// </summary>
public sealed class L1Feed(InboxClient inbox, JsonRpcClient l1, ulong fromBlock, ulong maxRange = 2000)
{
    static readonly string Selector = "0x" + Nethereum.Contracts.ABITypedRegistry.GetFunctionABI<PostHeadersFunction>().Sha3Signature;

    /// <summary>The next L1 block to read.</summary>
    public ulong NextBlock { get; private set; } = fromBlock;
    readonly ulong _fromBlock = fromBlock;

    public void Rewind() => NextBlock = _fromBlock;

    /// <summary>
    /// The posted blocks in the next range of L1 blocks (up to the latest), in L1 order, and the L1 block after the range
    /// (empty and null when up to date). The cursor moves only with <see cref="Advance"/>, once the caller applied them all:
    /// a failure half way reads the range again (applying a header L1 holds twice changes nothing).
    /// </summary>
    public async Task<(IReadOnlyList<PostedBlock> Blocks, ulong? Next)> PollAsync(CancellationToken ct)
    {
        var latest = Quantity.ToUInt64(await l1.CallAsync("eth_blockNumber", [], ct));
        if (latest < NextBlock) return ([], null);
        var to = Math.Min(latest, NextBlock + maxRange - 1);
        var logs = await inbox.GetHeaderPostedAsync(NextBlock, to, ct);
        var result = new List<PostedBlock>(logs.Count);
        foreach (var log in logs) result.Add(await ReadAsync(log, ct));
        return (result, to + 1);
    }

    public void Advance(ulong next) => NextBlock = Math.Max(NextBlock, next);

    async Task<PostedBlock> ReadAsync(HeaderPostedLog log, CancellationToken ct)
    {
        var tx = await l1.CallAsync("eth_getTransactionByHash", [log.TxHash], ct);
        var input = tx.GetProperty("input").GetString() ?? "";
        var to = tx.TryGetProperty("to", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (IsInboxCall(to, input) && Find(input, log) is { } direct) return direct with { L1Block = log.BlockNumber, TxHash = log.TxHash };
        // Posted through a contract: find the inbox call in the transaction's call tree.
        var trace = await l1.CallAsync("debug_traceTransaction", [log.TxHash, new JsonObject { ["tracer"] = "callTracer" }], ct);
        foreach (var frame in Frames(trace))
        {
            var frameTo = frame.TryGetProperty("to", out var ft) ? ft.GetString() : null;
            var frameInput = frame.TryGetProperty("input", out var fi) ? fi.GetString() ?? "" : "";
            if (IsInboxCall(frameTo, frameInput) && Find(frameInput, log) is { } nested) return nested with { L1Block = log.BlockNumber, TxHash = log.TxHash };
        }
        throw new InvalidDataException($"L1 transaction {log.TxHash} posted slot {log.Slot} ({log.HeaderHash}), but no postHeaders call in it carries that header");
    }

    bool IsInboxCall(string? to, string input) =>
        to is not null && string.Equals(to, inbox.Inbox, StringComparison.OrdinalIgnoreCase) && input.StartsWith(Selector, StringComparison.OrdinalIgnoreCase);

    /// <summary>Every call frame of a call tracer's tree, without recursion (a contract can nest calls deeply).</summary>
    static IEnumerable<JsonElement> Frames(JsonElement root)
    {
        var stack = new Stack<JsonElement>();
        stack.Push(root);
        while (stack.Count > 0)
        {
            var frame = stack.Pop();
            yield return frame;
            if (frame.TryGetProperty("calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
                foreach (var c in calls.EnumerateArray().Reverse()) stack.Push(c);
        }
    }

    static PostedBlock? Find(string input, HeaderPostedLog log)
    {
        PostHeadersFunction call;
        try { call = new PostHeadersFunction().DecodeInput(input); }
        catch (Exception e) when (e is not OperationCanceledException) { return null; }
        foreach (var item in call.Items)
        {
            var header = item.Header.ToHeader();
            if (header.Slot != log.Slot) continue;
            var hash = Eip712.HashStruct(header);
            if (hash == log.HeaderHash) return new PostedBlock(header, hash, item.Payload, 0, "");
        }
        return null;
    }
}
