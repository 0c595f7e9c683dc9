using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests;

/// <summary>/readyz (ASP.NET Core health checks) says what is wrong, one line per failing check, never a stack trace.</summary>
public sealed class ReadinessTests(TestServers servers) : IAsyncLifetime
{
    TestMarket _market = null!;

    public async ValueTask InitializeAsync() => _market = await TestMarket.StartAsync(servers);

    public async ValueTask DisposeAsync() => await _market.DisposeAsync();

    [Fact]
    public async Task A_relay_whose_key_is_not_registered_on_the_inbox_is_not_ready_and_says_so()
    {
        // Dev key 0 deployed the contracts but never registered as a relay: L1 would refuse every result it signs.
        var relay = await _market.StartRelayAsync(c => c["Relay:SigningKey"] = AnvilNode.DevKeys[0], waitReady: false);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        string body = "";
        int status = 0;
        while (DateTime.UtcNow < deadline)
        {
            using var r = await http.GetAsync($"{relay.Url}/readyz");
            (status, body) = ((int)r.StatusCode, await r.Content.ReadAsStringAsync());
            if (body.Contains("relay_key:", StringComparison.Ordinal)) break;
            await Task.Delay(200);
        }
        Assert.Equal(503, status);
        var lines = body.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(lines, l => l.StartsWith("relay_key: ", StringComparison.Ordinal));
        Assert.Contains(Core.ProtocolKey.FromHex(AnvilNode.DevKeys[0]).Address.ToString(), line, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("not a registered", line);
        foreach (var l in lines) Assert.Matches("^[a-z0-9_]+: \\S", l);
        Assert.DoesNotContain("   at ", body);
        Assert.DoesNotContain("Exception", body);
    }

    [Fact]
    public async Task A_registered_relay_with_its_servers_up_is_ready()
    {
        var relay = await _market.StartRelayAsync();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var r = await http.GetAsync($"{relay.Url}/readyz");
        Assert.Equal(200, (int)r.StatusCode);
        Assert.Equal("ready\n", await r.Content.ReadAsStringAsync());
    }
}
