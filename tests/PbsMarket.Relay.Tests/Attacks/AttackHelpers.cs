using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.Testing.Market;
using StackExchange.Redis;

namespace PbsMarket.Relay.Tests.Attacks;

/// <summary>What the attack tests share: raw HTTP from a chosen loopback address, and a snapshot of the relay's state.</summary>
internal static class AttackHelpers
{
    /// <summary>An HttpClient whose connections leave from <paramref name="source"/> (any of 127.0.0.0/8), so that
    /// each simulated client has its own address.</summary>
    public static HttpClient ClientFrom(string baseUrl, string source, TimeSpan? timeout = null)
    {
        var local = IPAddress.Parse(source);
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (ctx, ct) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    socket.Bind(new IPEndPoint(local, 0));
                    await socket.ConnectAsync(ctx.DnsEndPoint, ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler) { BaseAddress = new Uri(baseUrl.TrimEnd('/') + "/"), Timeout = timeout ?? TimeSpan.FromSeconds(10) };
    }

    public static async Task<(int Status, string Code, string Body)> SendAsync(HttpClient http, HttpMethod method, string path, byte[]? body = null,
        string contentType = "application/json", IDictionary<string, string>? headers = null)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
            request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }
        if (headers is not null) foreach (var (k, v) in headers) request.Headers.TryAddWithoutValidation(k, v);
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var code = "";
        if (response.Content.Headers.ContentType?.MediaType == "application/problem+json")
        {
            try
            {
                using var doc = JsonDocument.Parse(text);
                code = doc.RootElement.GetProperty("code").GetString() ?? "";
            }
            catch (JsonException)
            {
                code = "<bad problem json>";
            }
        }
        return ((int)response.StatusCode, code, text);
    }

    /// <summary>Every key of the market's Redis key space with its type and size: equal snapshots mean nothing changed.</summary>
    public static async Task<SortedDictionary<string, string>> SnapshotAsync(TestMarket market, Func<string, bool>? skip = null)
    {
        using var redis = await ConnectionMultiplexer.ConnectAsync(market.Redis.ConnectionString);
        var server = redis.GetServers()[0];
        var db = redis.GetDatabase();
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        await foreach (var key in server.KeysAsync(pattern: $"pbs:{{{market.Network}*"))
        {
            var k = (string)key!;
            if (skip?.Invoke(k) == true) continue;
            var type = await db.KeyTypeAsync(key);
            map[k] = type switch
            {
                RedisType.Hash => "hash:" + string.Join(",", (await db.HashGetAllAsync(key)).OrderBy(e => (string)e.Name!, StringComparer.Ordinal).Select(e => $"{e.Name}={((string?)e.Value)?.Length}")),
                RedisType.Stream => "stream:" + await db.StreamLengthAsync(key),
                RedisType.List => "list:" + await db.ListLengthAsync(key),
                RedisType.SortedSet => "zset:" + await db.SortedSetLengthAsync(key),
                _ => type + ":" + (await db.StringGetAsync(key)).ToString().Length,
            };
        }
        return map;
    }

    public static async Task<long> HashLengthAsync(TestMarket market, RedisKey key)
    {
        using var redis = await ConnectionMultiplexer.ConnectAsync(market.Redis.ConnectionString);
        return await redis.GetDatabase().HashLengthAsync(key);
    }

    /// <summary>A head announcement for <paramref name="slot"/> by its proposer: its own empty block on the given parent.</summary>
    public static byte[] Announcement(TestMarket market, ulong slot, Hash32 parent, ulong number, ulong? timestampMs = null)
    {
        var proposer = market.ProposerOf(slot);
        var header = new Header(TestMarket.L2ChainId, slot, number, parent, timestampMs ?? (ulong)market.Deployment.GenesisMs + slot * (ulong)market.SlotLengthMs,
            30_000_000, 0, Keccak.Hash(PayloadCodec.Empty), proposer.Address, proposer.Address, 0);
        var hash = Eip712.HashStruct(header);
        var builderSig = proposer.Sign(Eip712.Digest(market.Domain, hash));
        var proposalSig = proposer.Sign(Eip712.Digest(market.Domain, Proposal.Fallback(slot, hash)));
        return Wire.ToUtf8(new HeadAnnouncement(header, builderSig, proposalSig, PayloadCodec.Empty), Wire.WriteHeadAnnouncement);
    }

    public static async Task<(Hash32 Hash, ulong Number, ulong Slot)> HeadAsync(HttpClient http)
    {
        using var doc = JsonDocument.Parse(await http.GetStringAsync("relay/v1/proposer/head"));
        var r = doc.RootElement;
        return (Hash32.Parse(r.GetProperty("hash").GetString()!), ulong.Parse(r.GetProperty("number").GetString()!), ulong.Parse(r.GetProperty("slot").GetString()!));
    }
}
