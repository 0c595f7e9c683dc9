using System.Globalization;
using Microsoft.Playwright;
using PbsMarket.Testing;
using static Microsoft.Playwright.Assertions;

namespace PbsMarket.Dashboard.Tests;

/// <summary>The relay goes away and a new instance comes back on the same port: the page says so, reconnects and catches up.</summary>
public sealed class RelayRestartTests(TestServers servers) : IAsyncLifetime
{
    DashboardSession _s = null!;

    public async ValueTask InitializeAsync() => _s = await DashboardSession.StartAsync(servers);

    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    [Fact]
    public async Task The_page_shows_the_outage_reconnects_and_shows_new_slots()
    {
        await using var w = await _s.OpenAsync(1280, 800);
        var p = w.Page;
        var status = w.ByTestId("connection-status");
        await Expect(status).ToHaveAttributeAsync("data-state", "connected", new() { Timeout = 15_000 });
        await Expect(w.ByTestId("slot-row").First).ToBeVisibleAsync(new() { Timeout = 15_000 });
        await DashboardTests.WaitForSlotsAsync(w, 2);
        Assert.Empty(w.Errors);
        var newestBefore = await NewestClosedSlotAsync(p);

        // Down: the indicator says so within a moment, and stays so while the relay is away.
        _s.PauseTraffic(true);
        await _s.StopRelayAsync();
        await Expect(status).Not.ToHaveAttributeAsync("data-state", "connected", new() { Timeout = 15_000 });
        await Expect(status).ToContainTextAsync("disconnected");
        // ...and stays so for three slots of the page's own clock.
        var chainSlot = ulong.Parse(await w.ByTestId("chain-slot").TextContentAsync() ?? "0", CultureInfo.InvariantCulture);
        await p.WaitForFunctionAsync("t => Number(document.querySelector('[data-testid=chain-slot]').textContent) >= t", (double)(chainSlot + 3), new() { Timeout = 30_000 });
        await Expect(status).Not.ToHaveAttributeAsync("data-state", "connected");
        await DashboardSession.ScreenshotAsync(p, "restart-disconnected");
        var downAt = _s.Market.Clock.CurrentSlot + 1;

        // Back, on the same port: the page reconnects by itself (no reload) and shows slots newer than the outage.
        await _s.StartRelayAgainAsync();
        _s.PauseTraffic(false);
        await Expect(status).ToHaveAttributeAsync("data-state", "connected", new() { Timeout = 20_000 });
        var afterOutage = _s.Market.Clock.CurrentSlot + 1;
        await Expect(p.Locator($"[data-testid=slot-row][data-slot='{afterOutage}']")).ToBeVisibleAsync(new() { Timeout = 30_000 });
        await Expect(w.ByTestId("current-slot")).Not.ToHaveTextAsync(new System.Text.RegularExpressions.Regex($"^({string.Join("|", Enumerable.Range(0, 4).Select(i => (downAt - (ulong)i).ToString(CultureInfo.InvariantCulture)))})$"), new() { Timeout = 30_000 });
        // The page reveals slots again, live, and what it shows is the data API's.
        await _s.Market.WaitClosedAsync(afterOutage);
        await DashboardTests.WaitForRevealAsync(p, afterOutage);
        var shown = await DashboardTests.EvalJsonAsync<DashboardTests.RevealSnapshot>(p, DashboardTests.RevealSnapshotJs);
        var revealed = ulong.Parse(shown.Slot, CultureInfo.InvariantCulture);
        Assert.True(revealed >= afterOutage && revealed > newestBefore, $"reveal slot {revealed}: not after the outage (newest before {newestBefore}, first after {afterOutage})");
        DashboardTests.AssertRevealMatches(shown, await _s.GetJsonAsync($"relay/v1/data/slots/{revealed}"));
        await DashboardSession.ScreenshotAsync(p, "restart-reconnected");

        // While the relay was down the browser logged failed connections; nothing else went wrong.
        var unexpected = w.Errors.Where(e => !e.Contains("net::ERR_", StringComparison.Ordinal) && !e.Contains("Failed to load resource", StringComparison.Ordinal)).ToList();
        Assert.Empty(unexpected);
    }

    static async Task<ulong> NewestClosedSlotAsync(IPage p)
    {
        var slot = await p.Locator("[data-testid=slot-row]:not([data-status=open])").First.GetAttributeAsync("data-slot");
        return ulong.Parse(slot ?? "0", CultureInfo.InvariantCulture);
    }
}
