using System.Text.Json;
using PbsMarket.Builder;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Devnet.Tests;

[CollectionDefinition(nameof(RelayProcessTests), DisableParallelization = true)]
public sealed class RelayProcessCollection;

/// <summary>`pbs relay` as an operator runs it: a real process from a settings file, against a deployed market.</summary>
[Collection(nameof(RelayProcessTests))]
public sealed class RelayProcessTests(TestServers servers) : IAsyncLifetime
{
    TestMarket _market = null!;
    readonly List<PbsProcess> _started = [];
    readonly string _dir = Directory.CreateTempSubdirectory("pbs-relay-proc-").FullName;

    public async ValueTask InitializeAsync() => _market = await TestMarket.StartAsync(servers);

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _started) await p.DisposeAsync(); // stops any relay a failed assertion left running
        await _market.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    async Task<(PbsProcess Process, string Url)> StartRelayAsync(string name, Action<Dictionary<string, string?>>? configure = null, params string[] extra)
    {
        var (p, url) = await RelayProcess.StartAsync(_market, _dir, name, configure, extra);
        _started.Add(p);
        return (p, url);
    }

    /// <summary>Sends <paramref name="n"/> accepted bids (and a few reads) to the relay at <paramref name="url"/>.</summary>
    async Task SendBidsAsync(string url, int n)
    {
        using var client = new BuilderClient(url);
        var sent = 0;
        while (sent < n)
        {
            var a = await _market.NextAuctionAsync(client, 400);
            for (var i = 0; i < 10 && sent < n; i++, sent++)
            {
                var bid = TestMarket.Bid(a, TestMarket.Builders[sent % TestMarket.Builders.Length], 10_000 + sent);
                await client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
            }
        }
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        foreach (var path in new[] { "/metrics", "/readyz", "/relay/v1/data/slots" }) (await http.GetAsync(url + path)).Dispose();
    }

    static async Task<string> StopAsync(PbsProcess p)
    {
        // Ctrl-C where this test run can deliver it; SIGTERM where the run was started so that SIGINT is ignored (a
        // clean-clone run from a background job met that: the relay kept running and the test waited 30 s).
        if (p.IgnoresInterrupt) p.Terminate(); else p.Interrupt();
        var code = await p.WaitExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(code == 0, $"pbs relay exited {code}\n{p.Stderr}");
        return p.Stdout;
    }

    [Fact]
    public async Task Relay_process_logs_no_line_per_request_and_json_lines_parse_as_json()
    {
        const int Bids = 30;
        var (text, textUrl) = await StartRelayAsync("text");
        await SendBidsAsync(textUrl, Bids);
        var textLog = await StopAsync(text);
        Assert.DoesNotContain("/relay/v1/builder/bids", textLog);
        Assert.DoesNotContain("Request starting", textLog);
        Assert.DoesNotContain("Executing endpoint", textLog);
        var textLines = textLog.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(textLines.Length < Bids, $"{textLines.Length} log lines for {Bids} bids:\n{textLog}");

        var (json, jsonUrl) = await StartRelayAsync("json", null, "--log-format", "json");
        await SendBidsAsync(jsonUrl, Bids);
        var jsonLog = await StopAsync(json);
        var lines = jsonLog.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length is > 0 and < Bids, $"{lines.Length} log lines for {Bids} bids:\n{jsonLog}");
        foreach (var line in lines)
        {
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); } // one object per line
            catch (JsonException) { Assert.Fail($"not a JSON object: {line}\n{jsonLog}"); throw; }
            var e = doc.RootElement;
            foreach (var field in new[] { "Timestamp", "LogLevel", "Category", "Message" })
                Assert.True(e.TryGetProperty(field, out _), $"no {field} in {line}");
            Assert.False(e.GetProperty("Category").GetString()!.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal), line);
            doc.Dispose();
        }
        // The structured state: the relay's signing address is a field, not only text in the message.
        Assert.Contains(lines, l => JsonDocument.Parse(l).RootElement.TryGetProperty("State", out var s) && s.TryGetProperty("Address", out _));
    }

    [Fact]
    public async Task An_operators_log_level_beats_the_defaults_and_brings_the_per_request_lines_back()
    {
        // The same check as above sees per-request lines when they are there (what every request logged before).
        var (verbose, url) = await StartRelayAsync("verbose", s => s["Logging:LogLevel:Microsoft.AspNetCore"] = "Information");
        await SendBidsAsync(url, 5);
        var log = await StopAsync(verbose);
        Assert.Contains("Request starting", log);
        Assert.Contains("/relay/v1/builder/bids", log);
    }
}
