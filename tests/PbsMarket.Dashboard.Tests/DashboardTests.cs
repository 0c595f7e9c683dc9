using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using PbsMarket.Testing;
using static Microsoft.Playwright.Assertions;

namespace PbsMarket.Dashboard.Tests;

/// <summary>One live market (with bids flowing) shared by the tests of <see cref="DashboardTests"/>.</summary>
public sealed class LiveMarket(TestServers servers) : IAsyncLifetime
{
    public DashboardSession Session { get; private set; } = null!;

    public async ValueTask InitializeAsync() => Session = await DashboardSession.StartAsync(servers);

    public async ValueTask DisposeAsync()
    {
        if (Session is not null) await Session.DisposeAsync();
    }
}

/// <summary>The dashboard in Chromium against a live relay: sealed while open, the reveal, slots, standings, layout.</summary>
public sealed class DashboardTests(LiveMarket live) : IClassFixture<LiveMarket>
{
    DashboardSession S => live.Session;
    static readonly LocatorAssertionsToHaveTextOptions Slow = new() { Timeout = 15_000 };


    [Fact]
    public async Task Loads_live_without_console_errors_at_laptop_and_phone_sizes()
    {
        await using var laptop = await S.OpenAsync(1280, 800);
        var p = laptop.Page;
        await Expect(laptop.ByTestId("connection-status")).ToHaveAttributeAsync("data-state", "connected", new() { Timeout = 15_000 });
        await Expect(laptop.ByTestId("current-slot")).ToHaveTextAsync(new Regex(@"^\d+$"), Slow);
        await Expect(laptop.ByTestId("slot-row").First).ToBeVisibleAsync(new() { Timeout = 15_000 });
        await Expect(laptop.ByTestId("builder-row")).ToHaveCountAsync(3, new() { Timeout = 20_000 });
        await Expect(laptop.ByTestId("proposer-row")).ToHaveCountAsync(4, new() { Timeout = 20_000 });
        await Expect(p.Locator(".uplot canvas")).ToHaveCountAsync(2);

        // The slot shown is the relay's open auction (or the one after it, across a boundary).
        var shown = ulong.Parse(await laptop.ByTestId("current-slot").TextContentAsync() ?? "", CultureInfo.InvariantCulture);
        var open = S.Market.Clock.CurrentSlot + 1;
        Assert.InRange(shown, open - 1, open + 1);

        // A few slots of live updates, then: nothing went wrong in the page.
        await WaitForSlotsAsync(laptop, 3);
        await ExpandFirstRowWithStatusAsync(laptop, "proposed", "posted");
        await p.EvaluateAsync("() => window.scrollTo(0, 0)");
        await Expect(laptop.ByTestId("sealed-badge")).ToHaveAttributeAsync("data-state", "sealed", new() { Timeout = 15_000 });
        await DashboardSession.ScreenshotAsync(p, "laptop-1280x800");
        await DashboardSession.ScreenshotAsync(p, "laptop-1280x800-full", fullPage: true);
        Assert.Empty(laptop.Errors);

        await using var phone = await S.OpenAsync(390, 844, mobile: true);
        await Expect(phone.ByTestId("connection-status")).ToHaveAttributeAsync("data-state", "connected", new() { Timeout = 15_000 });
        await Expect(phone.ByTestId("slot-row").First).ToBeVisibleAsync(new() { Timeout = 15_000 });
        await Expect(phone.ByTestId("countdown")).ToBeVisibleAsync();
        await Expect(phone.ByTestId("sealed-badge")).ToBeVisibleAsync();
        await WaitForSlotsAsync(phone, 2);
        // Nothing wider than the phone: no sideways scrolling of the page itself.
        var overflow = await phone.Page.EvaluateAsync<int>("() => document.documentElement.scrollWidth - window.innerWidth");
        Assert.True(overflow <= 0, $"the page is {overflow}px wider than the phone");
        await Expect(phone.ByTestId("sealed-badge")).ToHaveAttributeAsync("data-state", "sealed", new() { Timeout = 15_000 });
        await DashboardSession.ScreenshotAsync(phone.Page, "phone-390x844");
        await DashboardSession.ScreenshotAsync(phone.Page, "phone-390x844-full", fullPage: true);
        Assert.Empty(phone.Errors);
    }

    [Fact]
    public async Task The_countdown_moves_and_an_open_auction_shows_nothing_about_its_bids()
    {
        await using var w = await S.OpenAsync(1280, 800);
        var p = w.Page;
        await Expect(w.ByTestId("connection-status")).ToHaveAttributeAsync("data-state", "connected", new() { Timeout = 15_000 });

        // The countdown moves: a reading is replaced by another one.
        await Expect(w.ByTestId("countdown")).ToHaveTextAsync(new Regex(@"^\d+\.\d\d s$"), Slow);
        var first = await w.ByTestId("countdown").TextContentAsync() ?? "";
        await Expect(w.ByTestId("countdown")).Not.ToHaveTextAsync(first, Slow);

        // While slots are open with bids in them (several in a row), the page holds none of their values.
        var checkedSlots = new List<ulong>();
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (checkedSlots.Count < 3 && DateTime.UtcNow < deadline)
        {
            var open = S.Market.Clock.CurrentSlot + 1;
            var closesMs = (long)S.Market.Clock.AuctionClosesMs(open);
            if (checkedSlots.Contains(open) || !S.Traffic.TryGetValue(open, out var traffic)
                || closesMs - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() < 250)
            {
                await Task.Delay(25);
                continue;
            }
            // One atomic look at the page (a single evaluation), taken while the auction is still open.
            var snap = await EvalJsonAsync<SealedSnapshot>(p, SealedSnapshotJs, new object[] { open.ToString(CultureInfo.InvariantCulture), traffic.Values.Select(v => v.ToString(CultureInfo.InvariantCulture)).ToArray() });
            if (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() >= closesMs)
                continue; // too slow (a loaded machine): the auction closed meanwhile; try the next one
            // Whatever the page shows, nothing of the open auction's bids is in it.
            foreach (var (value, formatted) in traffic.Values.Zip(snap.Formatted))
            {
                Assert.DoesNotContain(value.ToString(CultureInfo.InvariantCulture), snap.Html);
                Assert.DoesNotContain(formatted, snap.Html);
                Assert.DoesNotContain(formatted, snap.Text);
            }
            // The page shows this auction once its `opened` event arrived; on a loaded machine that can trail the
            // relay. Such a look is not counted as one of the checked slots: try the next one.
            if (snap.Shown != open.ToString(CultureInfo.InvariantCulture)) continue;
            Assert.Equal("sealed", snap.Badge);
            // Its row says sealed, not a number of bids.
            if (snap.RowStatus is not null)
            {
                Assert.Equal("open", snap.RowStatus);
                Assert.Contains("sealed", snap.RowText);
            }
            checkedSlots.Add(open);

            // ...and once it has closed, the same values are there for everyone to see.
            await Expect(w.ByTestId("slots").Locator($"[data-testid=slot-row][data-slot='{open}']")).Not.ToHaveAttributeAsync("data-status", "open", new() { Timeout = 20_000 });
            await ExpandAsync(p, open.ToString(CultureInfo.InvariantCulture));
            var details = p.Locator($"[data-testid=slot-details][data-slot='{open}']");
            foreach (var formatted in snap.Formatted)
                await Expect(details).ToContainTextAsync(formatted, new() { Timeout = 20_000 });
        }
        Assert.True(checkedSlots.Count >= 3, $"checked only {checkedSlots.Count} open auctions; traffic problems: {string.Join(" | ", S.TrafficProblems.TakeLast(5))}");
        Assert.Empty(w.Errors);
    }

    [Fact]
    public async Task After_the_close_the_reveal_equals_the_data_api()
    {
        await using var w = await S.OpenAsync(1280, 800);
        var p = w.Page;
        await Expect(w.ByTestId("connection-status")).ToHaveAttributeAsync("data-state", "connected", new() { Timeout = 15_000 });
        for (var round = 0; round < 3; round++)
        {
            // The next slot the page reveals live (from its `closed` event), compared with the data API.
            var open = S.Market.Clock.CurrentSlot + 1;
            await S.Market.WaitClosedAsync(open);
            // It reveals this slot, or a later one if the page moved on before we looked.
            await WaitForRevealAsync(p, open);
            var shown = await EvalJsonAsync<RevealSnapshot>(p, RevealSnapshotJs);
            var api = await S.GetJsonAsync($"relay/v1/data/slots/{shown.Slot}");
            Assert.True(ulong.Parse(shown.Slot, CultureInfo.InvariantCulture) >= open);
            AssertRevealMatches(shown, api);
        }
        Assert.Empty(w.Errors);
    }

    [Fact]
    public async Task Recent_slots_show_their_status_and_expand_to_bids_and_the_l1_transaction()
    {
        await using var w = await S.OpenAsync(1280, 800);
        var p = w.Page;
        await Expect(w.ByTestId("connection-status")).ToHaveAttributeAsync("data-state", "connected", new() { Timeout = 15_000 });

        // Slots that were proposed and slots that were missed (the loop skips one proposal in three).
        await Expect(p.Locator("[data-testid=slot-row][data-status=missed]").First).ToBeVisibleAsync(new() { Timeout = 20_000 });
        await Expect(p.Locator("[data-testid=slot-row][data-status=proposed], [data-testid=slot-row][data-status=posted]").First).ToBeVisibleAsync(new() { Timeout = 20_000 });
        await Expect(p.Locator("[data-testid=slot-row][data-status=open]")).ToHaveCountAsync(1, new() { Timeout = 15_000 });

        // Each row's status is the data API's. Rows are found by their slot (the table grows at the top every
        // slot, so a row's index moves), and a slot's status can move on (proposed, then posted) between reading
        // the API and the page: both are read again until they agree, which they must once the slot settles.
        // The table is the list page plus what events add: wait for the page to be in (a list read the relay's data
        // limit answered 429 is retried by the dashboard), not just for the first rows an event brings.
        var slots = await p.Locator("[data-testid=slot-row]").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.slot)");
        for (var deadline = DateTime.UtcNow.AddSeconds(30); slots.Length < 12 && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(200);
            slots = await p.Locator("[data-testid=slot-row]").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.slot)");
        }
        var checkedRows = 0;
        foreach (var slot in slots.Skip(4).Take(8))
        {
            await WaitRowMatchesApiAsync(p, slot);
            checkedRows++;
        }
        Assert.True(checkedRows >= 4, $"only {checkedRows} settled rows");

        // Expanding a proposed (or posted) slot shows its bids and its L1 transaction (or that it is not posted yet).
        var slotNumber = await ExpandFirstRowWithStatusAsync(w, "proposed", "posted");
        var details = p.Locator($"[data-testid=slot-details][data-slot='{slotNumber}']");
        await Expect(details).ToBeVisibleAsync();
        var slotApi = await S.GetJsonAsync($"relay/v1/data/slots/{slotNumber}");
        await Expect(details.GetByTestId("bid-row")).ToHaveCountAsync(slotApi.GetProperty("bids").GetArrayLength(), new() { Timeout = 15_000 });
        var l1 = details.GetByTestId("l1-tx");
        if (slotApi.TryGetProperty("l1_tx_hash", out var tx))
            await Expect(l1).ToHaveTextAsync(tx.GetString()!, Slow);
        else
            await Expect(l1).ToHaveTextAsync(new Regex("not posted yet|0x[0-9a-f]{64}"));
        await Expect(details).ToContainTextAsync(slotApi.GetProperty("bids_root").GetString()!);

        // Collapsing hides it again.
        await PressRowAsync(p, slotNumber);
        await Expect(details).ToHaveCountAsync(0, new() { Timeout = 15_000 });
        Assert.Empty(w.Errors);
    }

    [Fact]
    public async Task Standings_and_the_rotation_match_the_data_api()
    {
        await using var w = await S.OpenAsync(1280, 800);
        var p = w.Page;
        await Expect(w.ByTestId("connection-status")).ToHaveAttributeAsync("data-state", "connected", new() { Timeout = 15_000 });
        await Expect(w.ByTestId("builder-row")).ToHaveCountAsync(3, new() { Timeout = 20_000 });

        // Standings refresh once per slot; pause between two refreshes and compare.
        var ok = false;
        string last = "";
        var standingsDeadline = DateTime.UtcNow.AddSeconds(60);
        while (!ok && DateTime.UtcNow < standingsDeadline)
        {
            var api = await S.GetJsonAsync("relay/v1/data/builders");
            var expected = api.GetProperty("builders").EnumerateArray()
                .Select(b => $"{b.GetProperty("builder").GetString()!.ToLowerInvariant()}:{b.GetProperty("wins").GetString()}:{b.GetProperty("bids").GetString()}:{b.GetProperty("total_paid").GetString()}")
                .Order().ToList();
            var shown = new List<string>();
            foreach (var row in await w.ByTestId("builder-row").AllAsync())
            {
                var cells = await row.Locator("td").AllInnerTextsAsync();
                var paid = await row.Locator("td").Nth(4).Locator("[data-wei]").GetAttributeAsync("data-wei");
                shown.Add($"{await row.GetAttributeAsync("data-address")}:{cells[1].Trim().Replace(",", "", StringComparison.Ordinal)}:{cells[3].Trim().Replace(",", "", StringComparison.Ordinal)}:{paid}");
            }
            shown.Sort(StringComparer.Ordinal);
            ok = expected.SequenceEqual(shown);
            last = $"api {string.Join(", ", expected)} / page {string.Join(", ", shown)}";
            if (!ok) await p.WaitForTimeoutAsync(200); // poll until the next refresh agrees (deadline above)
        }
        Assert.True(ok, last);

        // The rotation: the coming slots with their proposers, the open auction's slot marked. The page
        // refreshes it once per slot, and near an epoch boundary the relay's forecast for the next
        // epoch can change once L1 fixes its set, so compare until one refresh agrees.
        JsonElement proposers = default;
        var rotationOk = false;
        var rotationLast = "";
        var rotationDeadline = DateTime.UtcNow.AddSeconds(60);
        while (!rotationOk && DateTime.UtcNow < rotationDeadline)
        {
            proposers = await S.GetJsonAsync("relay/v1/data/proposers");
            var rotation = proposers.GetProperty("rotation").EnumerateArray().ToDictionary(r => r.GetProperty("slot").GetString()!, r => r.GetProperty("proposer").GetString()!.ToLowerInvariant());
            var chips = await EvalJsonAsync<string[][]>(p, """
                () => JSON.stringify([...document.querySelectorAll('[data-testid=rotation-slot]')].map(c => [c.dataset.slot, c.querySelector('[data-address]')?.dataset.address ?? '']))
                """);
            var compared = chips.Where(c => rotation.ContainsKey(c[0])).ToList();
            var wrong = compared.Where(c => rotation[c[0]] != c[1]).Select(c => $"{c[0]}: page {c[1]}, api {rotation[c[0]]}").ToList();
            rotationOk = chips.Length >= 8 && compared.Count >= 8 && wrong.Count == 0;
            rotationLast = $"{chips.Length} entries, {compared.Count} compared, wrong: {string.Join("; ", wrong)}";
            if (!rotationOk) await p.WaitForTimeoutAsync(200); // poll (deadline above)
        }
        Assert.True(rotationOk, rotationLast);
        // The marked chip is the open auction's slot: both read in one evaluation (they move on every slot).
        await p.WaitForFunctionAsync("""
            () => document.querySelector('[data-testid=rotation-slot].current')?.dataset.slot === document.querySelector('[data-testid=current-slot]').textContent
            """, null, new() { Timeout = 30_000 });

        // Each proposer's record.
        var records = proposers.GetProperty("proposers").EnumerateArray().ToList();
        await Expect(w.ByTestId("proposer-row")).ToHaveCountAsync(records.Count);
        Assert.Empty(w.Errors);
    }

    public sealed record SealedSnapshot(string Html, string Text, string? Badge, string? Shown, string? RowStatus, string? RowText, string[] Formatted);

    const string SealedSnapshotJs = """
        ([slot, values]) => {
          const row = document.querySelector(`[data-testid=slot-row][data-slot="${slot}"]`);
          return JSON.stringify({
            html: document.documentElement.outerHTML,
            text: document.body.innerText,
            badge: document.querySelector('[data-testid=sealed-badge]').dataset.state,
            shown: document.querySelector('[data-testid=current-slot]').textContent,
            rowStatus: row ? row.dataset.status : null,
            rowText: row ? row.innerText : null,
            formatted: values.map(v => window.pbsDashboard.formatWei(v)),
          });
        }
        """;

    /// <summary>The reveal panel read in one evaluation (it changes every slot).</summary>
    public sealed record RevealSnapshot(string Slot, string? WinnerAddress, string? WinnerHash, string? PriceWei, string PriceText, string PriceFormatted,
        string Root, string Count, RevealBid[] Bids, int WinnerRows);
    public sealed record RevealBid(string Hash, string? Wei, string? Builder, string Gas, string Txs);

    internal const string RevealSnapshotJs = """
        () => {
          const q = (id) => document.querySelector(`[data-testid=${id}]`);
          const price = q('price');
          return JSON.stringify({
            slot: q('reveal-slot').textContent,
            winnerAddress: q('winner').dataset.address ?? null,
            winnerHash: q('winner').dataset.headerHash ?? null,
            priceWei: price.dataset.wei ?? null,
            priceText: price.innerText.trim(),
            priceFormatted: window.pbsDashboard.formatWei(price.dataset.wei ?? '0'),
            root: q('bids-root').textContent,
            count: q('bid-count').textContent,
            winnerRows: q('reveal-bids').querySelectorAll('[data-testid=bid-row].winner-row').length,
            bids: [...q('reveal-bids').querySelectorAll('[data-testid=bid-row]')].map(r => {
              const cells = [...r.querySelectorAll('td')].map(td => td.innerText.trim());
              return { hash: r.dataset.headerHash, wei: r.querySelector('[data-wei]')?.dataset.wei ?? null,
                       builder: r.querySelector('[data-address]')?.dataset.address ?? null, gas: cells[cells.length - 2], txs: cells[cells.length - 1] };
            }),
          });
        }
        """;

    /// <summary>The reveal as the page shows it equals the data API's slot.</summary>
    internal static void AssertRevealMatches(RevealSnapshot shown, JsonElement api)
    {
        var winner = api.GetProperty("winner");
        if (winner.ValueKind == JsonValueKind.Null)
            Assert.True(string.IsNullOrEmpty(shown.WinnerAddress));
        else
        {
            Assert.Equal(winner.GetProperty("builder").GetString()!.ToLowerInvariant(), shown.WinnerAddress);
            Assert.Equal(winner.GetProperty("header_hash").GetString(), shown.WinnerHash);
        }
        Assert.Equal(api.GetProperty("price").GetString(), shown.PriceWei);
        Assert.Equal(shown.PriceFormatted, shown.PriceText);
        Assert.Equal(api.GetProperty("bids_root").GetString(), shown.Root);
        Assert.Equal(api.GetProperty("bid_count").GetString(), shown.Count);
        var bids = api.GetProperty("bids").EnumerateArray().ToList();
        Assert.Equal(bids.Count, shown.Bids.Length);
        foreach (var bid in bids)
        {
            var row = Assert.Single(shown.Bids, b => b.Hash == bid.GetProperty("header_hash").GetString());
            Assert.Equal(bid.GetProperty("value").GetString(), row.Wei);
            Assert.Equal(bid.GetProperty("builder").GetString()!.ToLowerInvariant(), row.Builder);
            Assert.Equal(bid.GetProperty("tx_count").GetString(), row.Txs);
            Assert.Equal(long.Parse(bid.GetProperty("gas_used").GetString()!, CultureInfo.InvariantCulture).ToString("N0", CultureInfo.InvariantCulture), row.Gas);
        }
        Assert.Equal(bids.Count > 0 && winner.ValueKind != JsonValueKind.Null ? 1 : 0, shown.WinnerRows);
    }

    static readonly JsonSerializerOptions JsOptions = new(JsonSerializerDefaults.Web);

    /// <summary>Runs a page function that returns JSON.stringify(...) and reads it as <typeparamref name="T"/>.</summary>
    internal static async Task<T> EvalJsonAsync<T>(IPage page, string js, object? arg = null) =>
        JsonSerializer.Deserialize<T>(await page.EvaluateAsync<string>(js, arg), JsOptions)!;

    /// <summary>Waits until the page's open auction is <paramref name="slots"/> slots further on (live updates arrived).</summary>
    internal static async Task WaitForSlotsAsync(WatchedPage w, int slots)
    {
        var shown = await w.ByTestId("current-slot").TextContentAsync() ?? "";
        var start = ulong.TryParse(shown, CultureInfo.InvariantCulture, out var n) ? n : 0;
        await w.Page.WaitForFunctionAsync("t => Number(document.querySelector('[data-testid=current-slot]').textContent) >= t",
            (double)(start + (ulong)slots), new() { Timeout = 30_000 + 2_000 * slots });
    }

    /// <summary>Waits until the reveal panel shows <paramref name="slot"/> or a later slot.</summary>
    internal static async Task WaitForRevealAsync(IPage page, ulong slot) =>
        await page.WaitForFunctionAsync("s => Number(document.querySelector('[data-testid=reveal-slot]').textContent) >= s", (double)slot, new() { Timeout = 30_000 });

    /// <summary>Reads a slot's status from the data API and its row until the two agree (or 30 s pass).</summary>
    async Task WaitRowMatchesApiAsync(IPage page, string slot)
    {
        var row = page.Locator($"[data-testid=slot-row][data-slot='{slot}']");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string? api = null, shown = null;
        while (DateTime.UtcNow < deadline)
        {
            api = (await S.GetJsonAsync($"relay/v1/data/slots/{slot}")).GetProperty("status").GetString();
            shown = await row.CountAsync() == 1 ? await row.GetAttributeAsync("data-status") : null;
            if (api == shown) return;
            await page.WaitForTimeoutAsync(100); // poll (deadline above)
        }
        Assert.Fail($"slot {slot}: the row says {shown ?? "(no row)"}, the data API {api}, for 30 s");
    }

    /// <summary>Opens a slot's row (it must end up expanded; a row already open is left open).</summary>
    internal static async Task ExpandAsync(IPage page, string slot)
    {
        var details = page.Locator($"[data-testid=slot-details][data-slot='{slot}']");
        if (await details.CountAsync() == 0) await PressRowAsync(page, slot);
        await Expect(details).ToBeVisibleAsync(new() { Timeout = 15_000 });
    }

    /// <summary>
    /// Presses a slot's row as a pointer would (the page toggles on pointerdown), found and pressed in one page
    /// evaluation: the table re-renders several times a second, and on a loaded machine a click's wait for a
    /// stable element can lose to the re-renders for as long as one likes (seen: 30 s of "element was detached").
    /// </summary>
    internal static async Task PressRowAsync(IPage page, string slot)
    {
        await page.WaitForFunctionAsync("""
            s => {
              const row = document.querySelector(`[data-testid=slot-row][data-slot="${s}"]`);
              if (!row) return false;
              row.dispatchEvent(new PointerEvent('pointerdown', { bubbles: true, cancelable: true, button: 0, isPrimary: true }));
              return true;
            }
            """, slot, new() { Timeout = 30_000 });
    }

    internal static async Task<string> ExpandFirstRowWithStatusAsync(WatchedPage w, params string[] statuses)
    {
        var selector = string.Join(", ", statuses.Select(s => $"[data-testid=slot-row][data-status={s}]"));
        var row = w.Page.Locator(selector).First;
        await Expect(row).ToBeVisibleAsync(new() { Timeout = 20_000 });
        var slot = await row.GetAttributeAsync("data-slot") ?? throw new InvalidOperationException("row without data-slot");
        await ExpandAsync(w.Page, slot);
        return slot;
    }
}
