using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PbsMarket.Core;

namespace PbsMarket.Relay.Bench;

/// <summary>
/// The hostile side of the flood benchmark, run as its own process (pinned to its own core by the caller):
///   --attacker --relay URL --rate N [--addresses 248] [--slow 64] --out report.json
/// Sends N requests a second, open loop, spread over many source addresses (127.0.0.2 and up) so that the
/// relay's per-address limits see only a few requests per address: validly signed bids from fresh unfunded keys,
/// edge cursors and limits on the data API, garbage bodies; plus a fixed number of connections trickling a bid
/// body a few bytes a second. Stops when its stdin closes, and writes what it was answered to --out.
/// </summary>
static class Attacker
{
    /// <summary>Shares of the request rate, in tenths (--mix U,D,G[,R]): unfunded bids from fresh keys, data-API edges, garbage
    /// bodies, and unfunded bids from a pool of 248 reused keys (whose collateral the relay has cached: no L1 read each).</summary>
    public const string DefaultMix = "4,3,3";

    static readonly string[] CursorQueries =
    [
        "cursor=18446744073709551615", "cursor=18446744073709551616", "cursor=9223372036854775807", "cursor=1000000000000",
        "cursor=99999999999999999999999999999999", "cursor=0", "cursor=-1", "cursor=0x10", "cursor=1e9", "cursor=%00",
        "limit=0", "limit=200", "limit=201", "limit=18446744073709551615", "limit=-5",
        "cursor=18446744073709551615&limit=200", "cursor=1&limit=200", "cursor=" + new string('9', 4000),
    ];

    public static async Task<int> RunAsync(string[] args)
    {
        var relay = new Uri(Args.String(args, "--relay") ?? throw new ArgumentException("--attacker needs --relay URL"));
        var rate = Args.Int(args, "--rate", 1000);
        var addressCount = Math.Clamp(Args.Int(args, "--addresses", 248), 1, 248);
        var slowCount = Args.Int(args, "--slow", 64);
        var outPath = Args.String(args, "--out") ?? throw new ArgumentException("--attacker needs --out FILE");
        var maxSeconds = Args.Int(args, "--max-seconds", 300);
        var mix = ParseMix(Args.String(args, "--mix") ?? DefaultMix);

        // One handler (its own connection pool) per source address: the relay sees each as a different client.
        var clients = Enumerable.Range(0, addressCount).Select(i => Client(relay, IPAddress.Parse($"127.0.0.{2 + i}"), 4, TimeSpan.FromSeconds(10))).ToArray();
        var slowClients = Enumerable.Range(0, slowCount).Select(i => Client(relay, IPAddress.Parse($"127.0.0.{2 + (addressCount - 1 - i % addressCount)}"), 1, TimeSpan.FromSeconds(60))).ToArray();
        var answers = new ConcurrentDictionary<string, long>();
        var bytes = new ConcurrentDictionary<string, long>();
        void Count(string key, long received)
        {
            answers.AddOrUpdate(key, 1, (_, n) => n + 1);
            bytes.AddOrUpdate(key, received, (_, n) => n + received);
        }

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(maxSeconds));
        // The caller closes our stdin to stop us (and if it dies, stdin closes too).
        _ = Task.Run(() => { while (Console.In.ReadLine() is not null) { } stop.Cancel(); });

        // What a signed bid needs (slot, head, proposer, domain), refreshed from the open auction.
        var auction = new AuctionView();
        var refresh = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var r = await clients[0].GetAsync("relay/v1/builder/auction", stop.Token);
                    if (r.IsSuccessStatusCode) auction.Update(JsonDocument.Parse(await r.Content.ReadAsByteArrayAsync(stop.Token)).RootElement);
                }
                catch (Exception) when (!stop.IsCancellationRequested) { }
                catch (OperationCanceledException) { }
                try { await Task.Delay(250, stop.Token); } catch (OperationCanceledException) { }
            }
        });
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (auction.Current is null && DateTime.UtcNow < deadline && !stop.IsCancellationRequested) await Task.Delay(100);
        if (auction.Current is null)
        {
            Console.Error.WriteLine("attacker: no open auction at the relay within 30 s");
            return 2;
        }

        var slowTasks = slowClients.Select(c => Task.Run(() => SlowLoopAsync(c, Count, stop.Token))).ToArray();
        Console.WriteLine($"attacker: flooding {relay} at {rate} requests/s from {addressCount} addresses, {slowCount} slow-body connections");

        // Open loop: requests go out on schedule whether or not earlier ones were answered (bounded in flight).
        var inFlight = 0;
        long sent = 0, skipped = 0;
        var pending = new ConcurrentDictionary<Task, byte>();
        var sw = Stopwatch.StartNew();
        while (!stop.IsCancellationRequested)
        {
            var due = (long)(sw.Elapsed.TotalSeconds * rate);
            while (sent + skipped < due)
            {
                var n = sent + skipped;
                if (Volatile.Read(ref inFlight) >= 4096) { skipped++; continue; }
                sent++;
                Interlocked.Increment(ref inFlight);
                var client = clients[(int)(n % addressCount)];
                var t = OneAsync(client, mix[(int)(n % 10)], n, auction.Current!, Count);
                pending[t] = 0;
                _ = t.ContinueWith(done => { pending.TryRemove(done, out _); Interlocked.Decrement(ref inFlight); }, TaskScheduler.Default);
            }
            try { await Task.Delay(1, stop.Token); } catch (OperationCanceledException) { }
        }
        var seconds = sw.Elapsed.TotalSeconds;
        await Task.WhenAny(Task.WhenAll(pending.Keys.Concat(slowTasks).Append(refresh)), Task.Delay(15_000));

        var report = new Dictionary<string, object>
        {
            ["seconds"] = Math.Round(seconds, 2),
            ["rate"] = rate,
            ["mix"] = Args.String(args, "--mix") ?? DefaultMix,
            ["sent"] = sent,
            ["skipped"] = skipped,
            ["addresses"] = addressCount,
            ["slow_connections"] = slowCount,
            ["answers"] = answers.OrderBy(a => a.Key, StringComparer.Ordinal).ToDictionary(a => a.Key, a => a.Value),
            // Response bytes per kind of answer: what the relay spent sending them (a cheap request with a big answer is an amplifier).
            ["bytes"] = bytes.OrderBy(a => a.Key, StringComparer.Ordinal).ToDictionary(a => a.Key, a => a.Value),
        };
        await File.WriteAllTextAsync(outPath, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"attacker: stopped after {seconds:0.0} s, {sent} requests sent ({sent / seconds:N0}/s), {skipped} skipped");
        foreach (var c in clients.Concat(slowClients)) c.Dispose();
        return 0;
    }

    /// <summary>"U,D,G[,R]" tenths into the kind of each of ten consecutive requests.</summary>
    public static string[] ParseMix(string mix)
    {
        var parts = mix.Split(',').Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
        if (parts.Length is not (3 or 4) || parts.Any(p => p < 0) || parts.Sum() != 10)
            throw new ArgumentException($"--mix wants three or four tenths that add up to 10 (unfunded,data,garbage[,unfunded from reused keys]), not '{mix}'");
        return [.. Enumerable.Repeat("unfunded_bid", parts[0]), .. Enumerable.Repeat("data_edge", parts[1]), .. Enumerable.Repeat("garbage", parts[2]),
            .. Enumerable.Repeat("unfunded_reused_key", parts.Length == 4 ? parts[3] : 0)];
    }

    static readonly ProtocolKey[] ReusedKeys = [.. Enumerable.Range(0, 248).Select(_ => new ProtocolKey(RandomNumberGenerator.GetBytes(32)))];

    static async Task OneAsync(HttpClient client, string kind, long n, AuctionView.State a, Action<string, long> count)
    {
        try
        {
            HttpResponseMessage response;
            if (kind == "unfunded_bid")
            {
                response = await client.PostAsync("relay/v1/builder/bids", Json(UnfundedBid(a, n)));
            }
            else if (kind == "unfunded_reused_key")
            {
                response = await client.PostAsync("relay/v1/builder/bids", Json(UnfundedBid(a, n, ReusedKeys[(int)(n / 10 % ReusedKeys.Length)])));
            }
            else if (kind == "data_edge")
            {
                response = await client.GetAsync("relay/v1/data/slots?" + CursorQueries[(int)(n / 10 % CursorQueries.Length)]);
            }
            else
            {
                var (body, type) = Garbage(a, n);
                var content = new ByteArrayContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue(type);
                response = await client.PostAsync("relay/v1/builder/bids", content);
            }
            using (response)
            {
                var (code, size) = await CodeOfAsync(response);
                count($"{kind} {(int)response.StatusCode} {code}", size);
            }
        }
        catch (Exception e)
        {
            count($"{kind} error {e.GetType().Name}", 0);
        }
    }

    /// <summary>A bid a relay must check fully (signature recovered, collateral read) before it can refuse it: a fresh key each time.</summary>
    static byte[] UnfundedBid(AuctionView.State a, long n, ProtocolKey? reused = null)
    {
        var key = reused ?? new ProtocolKey(RandomNumberGenerator.GetBytes(32));
        var header = new Header(a.L2ChainId, a.Slot, a.Number, a.Parent, a.TimestampMs, 30_000_000, 0, Keccak.Hash(PayloadCodec.Empty),
            key.Address, a.Proposer, a.Reserve + 1 + (ulong)(n % 1000));
        return Wire.ToUtf8(new BidSubmission(header, key.Sign(Eip712.Digest(a.Domain, header)), PayloadCodec.Empty), Wire.WriteBidSubmission);
    }

    static (byte[] Body, string Type) Garbage(AuctionView.State a, long n)
    {
        switch (n / 10 % 8)
        {
            case 0: return (RandomNumberGenerator.GetBytes(256), "application/json");
            case 1: return ("{"u8.ToArray(), "application/json");
            case 2: return ("{\"header\":{},\"signature\":\"0x\",\"payload\":\"0x\"}"u8.ToArray(), "application/json");
            case 3: return (Encoding.UTF8.GetBytes(new string('[', 5000) + new string(']', 5000)), "application/json");
            case 4:
                // A well-formed bid with a corrupted signature: it costs the relay a recovery.
                var bid = UnfundedBid(a, n);
                var text = Encoding.UTF8.GetString(bid);
                var at = text.IndexOf("\"signature\":\"0x", StringComparison.Ordinal) + 20;
                return (Encoding.UTF8.GetBytes(text[..at] + (text[at] == 'a' ? 'b' : 'a') + text[(at + 1)..]), "application/json");
            case 5: var half = UnfundedBid(a, n); return (half[..(half.Length / 2)], "application/json");
            case 6: return (UnfundedBid(a, n), "text/plain");
            default: return (Encoding.UTF8.GetBytes($"{{\"header\":{{\"slot\":\"{ulong.MaxValue}9\"}},\"n\":{n}}}"), "application/json");
        }
    }

    /// <summary>Holds one connection trickling a bid body a few bytes a second until the relay cuts it, again and again.</summary>
    static async Task SlowLoopAsync(HttpClient client, Action<string, long> count, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var sw = Stopwatch.StartNew();
            try
            {
                using var content = new Trickle(4096, 4, stop);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                using var response = await client.PostAsync("relay/v1/builder/bids", content, stop);
                var (code, size) = await CodeOfAsync(response);
                count($"slow_body {(int)response.StatusCode} {code} after {Bucket(sw.Elapsed)}", size);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { return; }
            catch (Exception e)
            {
                count($"slow_body cut ({Root(e).GetType().Name}) after {Bucket(sw.Elapsed)}", 0);
            }
        }
    }

    static string Bucket(TimeSpan t) => t.TotalSeconds switch { < 1 => "<1 s", < 3 => "1-3 s", < 6 => "3-6 s", < 15 => "6-15 s", _ => ">=15 s" };

    static Exception Root(Exception e)
    {
        while (e.InnerException is { } inner) e = inner;
        return e;
    }

    static async Task<(string Code, long Size)> CodeOfAsync(HttpResponseMessage r)
    {
        var bytes = await r.Content.ReadAsByteArrayAsync();
        if (r.Content.Headers.ContentType?.MediaType != "application/problem+json") return ("", bytes.Length);
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            return (doc.RootElement.TryGetProperty("code", out var c) ? c.GetString() ?? "" : "", bytes.Length);
        }
        catch (JsonException)
        {
            return ("unparsable", bytes.Length);
        }
    }

    static ByteArrayContent Json(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    /// <summary>A client whose connections leave from <paramref name="local"/> (all of 127.0.0.0/8 is loopback).</summary>
    public static HttpClient Client(Uri relay, IPAddress local, int connections, TimeSpan timeout) => new(new SocketsHttpHandler
    {
        MaxConnectionsPerServer = connections,
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
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
    })
    {
        BaseAddress = relay,
        Timeout = timeout,
    };

    /// <summary>A body of <c>length</c> bytes (declared), sent <c>bytesPerSecond</c> at a time, one write a second.</summary>
    sealed class Trickle(int length, int bytesPerSecond, CancellationToken stop) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            var chunk = new byte[bytesPerSecond];
            Array.Fill(chunk, (byte)' ');
            chunk[0] = (byte)'{';
            for (var sent = 0; sent < length; sent += chunk.Length)
            {
                await stream.WriteAsync(chunk, stop);
                await stream.FlushAsync(stop);
                chunk[0] = (byte)' ';
                await Task.Delay(1000, stop);
            }
        }

        protected override bool TryComputeLength(out long length1)
        {
            length1 = length;
            return true;
        }
    }

    sealed class AuctionView
    {
        public sealed record State(ulong Slot, ulong Number, Hash32 Parent, ulong TimestampMs, Address Proposer, ulong L2ChainId, ulong Reserve, Eip712Domain Domain);

        public State? Current { get; private set; }

        public void Update(JsonElement e)
        {
            ulong U(JsonElement x, string name) => ulong.Parse(x.GetProperty(name).GetString()!, CultureInfo.InvariantCulture);
            var d = e.GetProperty("domain");
            Current = new State(U(e, "slot"), U(e, "number"), Hash32.Parse(e.GetProperty("parent_hash").GetString()!), U(e, "timestamp_ms"),
                Address.Parse(e.GetProperty("proposer").GetString()!), U(e, "l2_chain_id"), U(e, "reserve_price"),
                Eip712Domain.PbsMarket(long.Parse(d.GetProperty("chain_id").GetString()!, CultureInfo.InvariantCulture), Address.Parse(d.GetProperty("verifying_contract").GetString()!)));
        }
    }
}
