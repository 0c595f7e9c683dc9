using System.Net.Http.Headers;
using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests;

/// <summary>While an auction is open, no endpoint, header, error or event reveals anything about its bids.</summary>
public sealed class SealedAuctionTests(TestServers servers) : MarketTest(servers, slotMs: 5000)
{
    [Fact]
    public async Task No_endpoint_reveals_an_open_auctions_bids()
    {
        using var http = new HttpClient { BaseAddress = new Uri(Relay.Url), Timeout = TimeSpan.FromSeconds(5) };
        // Listen to the event stream for the whole open auction.
        var streamText = new System.Text.StringBuilder();
        using var streamCts = new CancellationTokenSource();
        var streamTask = Task.Run(async () =>
        {
            try
            {
                using var req = new HttpRequestMessage(HttpMethod.Get, "/relay/v1/data/stream");
                req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
                using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, streamCts.Token);
                using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(streamCts.Token));
                while (await reader.ReadLineAsync(streamCts.Token) is { } line) lock (streamText) streamText.AppendLine(line);
            }
            catch (OperationCanceledException)
            {
            }
        });

        var a = await Market.NextAuctionAsync(Relay.Client, 3000);
        var secrets = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var value = 123_456_789 + i;
            var bid = TestMarket.Bid(a, TestMarket.Builders[i], value);
            var receipt = await Relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
            secrets.Add(receipt.HeaderHash.ToString());
            secrets.Add(value.ToString());
            secrets.Add(bid.Signature.ToString());
        }
        var builders = TestMarket.Builders.Select(b => b.Address.ToString()).ToList();

        string[] paths =
        [
            "/relay/v1/builder/auction",
            "/relay/v1/data/slots",
            "/relay/v1/data/slots?limit=5",
            $"/relay/v1/data/slots/{a.Slot}",
            $"/relay/v1/data/slots/{a.Slot}/proof/{secrets[0]}",
            "/relay/v1/data/builders",
            "/relay/v1/data/proposers",
            "/metrics",
            "/readyz",
            "/openapi/v1.json",
            $"/relay/v1/proposer/header/{a.Slot}",
        ];
        Assert.True(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() < (long)a.ClosesAtMs, "the probe must run while the auction is open");
        foreach (var path in paths)
        {
            using var response = await http.GetAsync(path);
            var text = await response.Content.ReadAsStringAsync() + string.Join("\n", response.Headers.Select(h => $"{h.Key}: {string.Join(",", h.Value)}"));
            foreach (var s in secrets) Assert.DoesNotContain(s, text, StringComparison.OrdinalIgnoreCase);
            foreach (var b in builders) Assert.DoesNotContain(b, text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("pbs_bids_total", text);
        }
        using (var open = await Relay.Client.GetJsonAsync($"relay/v1/data/slots/{a.Slot}"))
        {
            Assert.Equal("open", open.RootElement.GetProperty("status").GetString());
            foreach (var field in new[] { "bids", "bid_count", "winner", "price", "bids_root" })
                Assert.False(open.RootElement.TryGetProperty(field, out _), $"an open slot shows {field}");
        }
        Assert.True(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() < (long)a.ClosesAtMs, "the probe must finish while the auction is open");
        lock (streamText)
        {
            var events = streamText.ToString();
            foreach (var s in secrets) Assert.DoesNotContain(s, events, StringComparison.OrdinalIgnoreCase);
            foreach (var b in builders) Assert.DoesNotContain(b, events, StringComparison.OrdinalIgnoreCase);
        }

        // After the close everything is revealed, including through the stream.
        await Market.WaitClosedAsync(a.Slot);
        using var slot = await Relay.Client.GetJsonAsync($"relay/v1/data/slots/{a.Slot}");
        var revealed = slot.RootElement.GetRawText();
        Assert.Contains(secrets[0], revealed);
        Assert.Contains("123456789", revealed);
        var metrics = await http.GetStringAsync("/metrics");
        Assert.True(metrics.Contains("pbs_bids_total{result=\"accepted\"} 3", StringComparison.Ordinal), metrics);
        // The stream announces the close (wait for the event, not for a time).
        var closedEvent = $"\"type\":\"closed\",\"slot\":\"{a.Slot}\"";
        var streamDeadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < streamDeadline)
        {
            lock (streamText) if (streamText.ToString().Contains(closedEvent, StringComparison.Ordinal)) break;
            await Task.Delay(50);
        }
        streamCts.Cancel();
        await streamTask;
        lock (streamText) Assert.Contains(closedEvent, streamText.ToString());
    }
}
