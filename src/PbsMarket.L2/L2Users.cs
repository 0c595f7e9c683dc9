using System.Numerics;
using System.Text.Json;
using Nethereum.Signer;
using PbsMarket.Core;

namespace PbsMarket.L2;

/// <summary>What the L2 users did.</summary>
public sealed class L2UserStats
{
    long _sent, _refused, _included, _failed;
    public long Sent => Interlocked.Read(ref _sent);
    public long Refused => Interlocked.Read(ref _refused);
    public long Included => Interlocked.Read(ref _included);
    /// <summary>Included with status 0 (reverted).</summary>
    public long Reverted => Interlocked.Read(ref _failed);
    internal void OnSent() => Interlocked.Increment(ref _sent);
    internal void OnRefused() => Interlocked.Increment(ref _refused);
    internal void OnIncluded(bool ok) { Interlocked.Increment(ref _included); if (!ok) Interlocked.Increment(ref _failed); }
    public override string ToString() => $"{Sent} sent, {Included} included ({Reverted} reverted), {Refused} refused";
}

/// <summary>
/// L2 users for the devnet (<c>pbs l2users</c>): funded genesis accounts that send signed transfers and calls of a
/// counter contract (deployed first, by the first user, through the market like any transaction) with real tips to the
/// L2 JSON-RPC, as a wallet would: nonce from <c>eth_getTransactionCount(…, "pending")</c>, EIP-1559 fees, then
/// <c>eth_sendRawTransaction</c>; it follows each transaction to its receipt.
/// </summary>
public sealed class L2Users(JsonRpcClient rpc, IReadOnlyList<string> keys, long chainId, TimeSpan interval, Action<string> log, int? seed = null)
{
    /// <summary>The counter's runtime code: <c>sstore(0, sload(0) + 1)</c> on any call.</summary>
    public static readonly byte[] CounterRuntime = Convert.FromHexString("600054600101600055" + "00");
    /// <summary>Init code that returns <see cref="CounterRuntime"/>.</summary>
    public static byte[] CounterInitCode => [.. Convert.FromHexString("600a600c600039600a6000f3"), .. CounterRuntime];

    readonly Random _random = seed is { } s ? new Random(s) : new Random();
    readonly List<(string Hash, DateTime SentAt)> _waiting = [];
    public L2UserStats Stats { get; } = new();
    public string? Counter { get; private set; }

    public async Task RunAsync(CancellationToken ct)
    {
        var addresses = keys.Select(k => new EthECKey(k).GetPublicAddress().ToLowerInvariant()).ToList();
        string? deployHash = null;
        var lastReport = DateTime.UtcNow;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (Counter is null && deployHash is null)
                {
                    deployHash = await SendAsync(0, null, 0, CounterInitCode, 200_000, ct);
                    if (deployHash is not null) log($"deploying the counter contract: transaction {deployHash}");
                }
                else if (Counter is null && deployHash is not null)
                {
                    var r = await rpc.CallAsync("eth_getTransactionReceipt", [deployHash], ct);
                    if (r.ValueKind == JsonValueKind.Object && r.GetProperty("contractAddress").GetString() is { } c)
                    {
                        Counter = c;
                        log($"counter contract at {c} (block {Quantity.ToUInt64(r.GetProperty("blockNumber"))})");
                    }
                }
                var from = _random.Next(keys.Count);
                if (Counter is not null && _random.Next(3) == 0)
                    await SendAsync(from, Counter, 0, [], 100_000, ct);
                else
                    await SendAsync(from, addresses[(from + 1 + _random.Next(keys.Count - 1)) % keys.Count], _random.Next(1, 1000) * 1_000_000_000_000L, [], 21_000, ct);
                await FollowAsync(ct);
                if (DateTime.UtcNow - lastReport > TimeSpan.FromSeconds(10))
                {
                    log($"users: {Stats}");
                    lastReport = DateTime.UtcNow;
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { break; }
            catch (Exception e) when (e is HttpRequestException or TimeoutException or JsonRpcException or JsonException)
            {
                log($"the L2 RPC: {e.Message}");
            }
            try { await Task.Delay(interval, ct); } catch (OperationCanceledException) { break; }
        }
    }

    async Task<string?> SendAsync(int user, string? to, BigInteger value, byte[] data, ulong gas, CancellationToken ct)
    {
        var key = new EthECKey(keys[user]);
        var address = key.GetPublicAddress();
        var nonce = Quantity.ToUInt64(await rpc.CallAsync("eth_getTransactionCount", [address, "pending"], ct));
        var tip = new BigInteger(_random.Next(1, 6)) * 1_000_000_000; // 1-5 gwei
        var tx = new Nethereum.Model.Transaction1559(chainId, nonce, tip, tip * 2, gas, to!, value, Hex.Encode(data), null);
        new Transaction1559Signer().SignTransaction(key, tx);
        try
        {
            var hash = (await rpc.CallAsync("eth_sendRawTransaction", [Hex.Encode(tx.GetRLPEncoded())], ct)).GetString()!;
            Stats.OnSent();
            lock (_waiting) _waiting.Add((hash, DateTime.UtcNow));
            return hash;
        }
        catch (JsonRpcException e)
        {
            Stats.OnRefused();
            log($"user {address}: refused: {e.RpcMessage}");
            return null;
        }
    }

    /// <summary>Looks up the receipts of transactions sent at least a second ago (at most 50 a round); gives up on one after 5 minutes.</summary>
    async Task FollowAsync(CancellationToken ct)
    {
        List<(string Hash, DateTime SentAt)> due;
        lock (_waiting) due = [.. _waiting.Where(w => DateTime.UtcNow - w.SentAt > TimeSpan.FromSeconds(1)).Take(50)];
        if (due.Count == 0) return;
        var receipts = await rpc.BatchAsync([.. due.Select(d => ("eth_getTransactionReceipt", new System.Text.Json.Nodes.JsonArray(d.Hash)))], ct);
        lock (_waiting)
            for (var i = 0; i < due.Count; i++)
            {
                if (receipts[i].ValueKind == JsonValueKind.Object)
                {
                    Stats.OnIncluded(receipts[i].GetProperty("status").GetString() == "0x1");
                    _waiting.Remove(due[i]);
                }
                else if (DateTime.UtcNow - due[i].SentAt > TimeSpan.FromMinutes(5))
                {
                    _waiting.Remove(due[i]);
                }
            }
    }
}
