using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests.Attacks;

/// <summary>Oversized and trickled bodies, and floods from one address or one builder, meet Kestrel's limits and the rate limiters.</summary>
public sealed class LimitAttackTests(TestServers servers) : MarketTest(servers)
{
    static async Task<(Socket Socket, NetworkStream Stream)> ConnectFromAsync(string relayUrl, string source)
    {
        var uri = new Uri(relayUrl);
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
        await socket.ConnectAsync(IPAddress.Loopback, uri.Port);
        return (socket, new NetworkStream(socket, ownsSocket: true));
    }

    static async Task<string> ReadAllAsync(NetworkStream stream, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[8192];
        var text = new StringBuilder();
        try
        {
            while (true)
            {
                var n = await stream.ReadAsync(buffer, cts.Token);
                if (n == 0) break;
                text.Append(Encoding.ASCII.GetString(buffer, 0, n));
                if (text.ToString().Contains("\r\n\r\n") && text.ToString().Contains("\"code\"")) break;
            }
        }
        catch (IOException)
        {
            // reset by the server: also an answer
        }
        return text.ToString();
    }

    [Fact]
    public async Task A_declared_huge_body_is_refused_before_a_byte_of_it_is_read()
    {
        var (socket, stream) = await ConnectFromAsync(Relay.Url, "127.0.0.71");
        using (socket)
        await using (stream)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                "POST /relay/v1/builder/bids HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: 2000000000\r\n\r\n{"));
            var answer = await ReadAllAsync(stream, TimeSpan.FromSeconds(5));
            Assert.Contains(" 413 ", answer);
            Assert.Contains("payload_too_large", answer);
        }
    }

    [Fact]
    public async Task A_trickled_body_is_cut_off_within_seconds()
    {
        var (socket, stream) = await ConnectFromAsync(Relay.Url, "127.0.0.72");
        using (socket)
        await using (stream)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                "POST /relay/v1/builder/bids HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"));
            var sw = Stopwatch.StartNew();
            var cut = false;
            try
            {
                // One byte every 200 ms: 5 B/s, far under the minimum rate. The server must give up on it.
                while (sw.Elapsed < TimeSpan.FromSeconds(15))
                {
                    await stream.WriteAsync(" "u8.ToArray());
                    await Task.Delay(200);
                    if (socket.Poll(0, SelectMode.SelectRead)) { cut = true; break; }
                }
            }
            catch (IOException)
            {
                cut = true;
            }
            Assert.True(cut, "the connection was still open after 15 s of trickling");
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(8), $"cut after {sw.Elapsed}");
        }
    }

    [Fact]
    public async Task A_flood_from_one_address_is_rate_limited_with_Retry_After_while_another_address_is_served()
    {
        await using var relay = await Market.StartRelayAsync(s =>
        {
            s["Relay:RequestsPerSecondPerAddress"] = "20";
            s["Relay:BidsPerSecondPerBuilder"] = "5";
        });
        using var attacker = AttackHelpers.ClientFrom(relay.Url, "127.0.0.73");
        using var honest = AttackHelpers.ClientFrom(relay.Url, "127.0.0.74");
        var answers = await Task.WhenAll(Enumerable.Range(0, 100).Select(async _ =>
        {
            using var r = await attacker.GetAsync("relay/v1/data/proposers");
            return ((int)r.StatusCode, r.Headers.RetryAfter?.Delta, await r.Content.ReadAsStringAsync());
        }));
        var limited = answers.Where(x => x.Item1 == 429).ToList();
        Assert.True(limited.Count >= 50, $"{limited.Count} of 100 limited");
        Assert.All(limited, x => Assert.Contains("rate_limited", x.Item3));
        Assert.All(limited, x => Assert.True(x.Delta >= TimeSpan.FromSeconds(1)));
        Assert.DoesNotContain(answers, x => x.Item1 >= 500);
        using var served = await honest.GetAsync("relay/v1/data/proposers");
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);

        // Per builder: 5 bids a second; the rest are 429 rate_limited and not stored.
        var a = await Market.NextAuctionAsync(relay.Client, 500);
        var codes = new List<int>();
        for (var i = 0; i < 12; i++)
        {
            var bid = TestMarket.Bid(a, TestMarket.Builders[1], 7_000 + i);
            var (status, _) = await relay.Client.PostRawAsync("relay/v1/builder/bids", Wire.ToUtf8(new BidSubmission(bid.Header, bid.Signature, bid.Payload), Wire.WriteBidSubmission));
            codes.Add(status);
        }
        Assert.Equal(5, codes.Count(c => c == 202));
        Assert.Equal(7, codes.Count(c => c == 429));
        Assert.Equal(5, await AttackHelpers.HashLengthAsync(Market, new Auctions.RedisKeys(Market.Network).Bids(a.Slot)));
    }
}
