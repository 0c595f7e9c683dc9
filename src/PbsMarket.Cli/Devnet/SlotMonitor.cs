using System.Globalization;
using System.Numerics;
using System.Text.Json;
using Nethereum.Util;
using PbsMarket.Core;

namespace PbsMarket.Cli.Devnet;

/// <summary>A devnet builder (a `pbs builder` process); <see cref="Stats"/> once it has stopped and written them.</summary>
public sealed record DevnetBuilder(string Name, string StrategyName, Address Address)
{
    public BuilderStats? Stats { get; set; }
}

/// <summary>What a `pbs builder` wrote to its stats file when it stopped (its whole run).</summary>
public sealed record BuilderStats(long BidsAccepted, long BidsRefused, long InclusionVerified, long InclusionFailed)
{
    public static BuilderStats? Read(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var r = doc.RootElement;
            return new BuilderStats(r.GetProperty("bids_accepted").GetInt64(), r.GetProperty("bids_refused").GetInt64(),
                r.GetProperty("inclusion_verified").GetInt64(), r.GetProperty("inclusion_failed").GetInt64());
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IOException)
        {
            return null;
        }
    }
}

/// <summary>One slot as the data API shows it.</summary>
public sealed record SlotInfo(ulong Slot, string Proposer, string Status, int BidCount, string? WinnerBuilder, string? WinnerHash, BigInteger Price,
    string? ProposedHash, string? L1TxHash, string? MissedReason, IReadOnlyDictionary<Address, int> BidsByBuilder)
{
    public bool Final => Status is "posted" or "missed";

    public static SlotInfo Parse(JsonElement e)
    {
        static string? S(JsonElement x, string n) => x.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        var winner = e.TryGetProperty("winner", out var w) && w.ValueKind == JsonValueKind.Object ? w : (JsonElement?)null;
        var byBuilder = new Dictionary<Address, int>();
        if (e.TryGetProperty("bids", out var bids) && bids.ValueKind == JsonValueKind.Array)
            foreach (var b in bids.EnumerateArray())
                if (Address.TryParse(S(b, "builder"), out var a)) byBuilder[a] = byBuilder.GetValueOrDefault(a) + 1;
        return new SlotInfo(
            ulong.Parse(S(e, "slot")!, CultureInfo.InvariantCulture), S(e, "proposer") ?? "?", S(e, "status") ?? "?",
            S(e, "bid_count") is { } bc ? int.Parse(bc, CultureInfo.InvariantCulture) : 0,
            winner is { } w1 ? S(w1, "builder") : null, winner is { } w2 ? S(w2, "header_hash") : null,
            S(e, "price") is { } p ? BigInteger.Parse(p, CultureInfo.InvariantCulture) : 0,
            S(e, "proposed_header_hash"), S(e, "l1_tx_hash"), S(e, "missed_reason"), byBuilder);
    }
}

/// <summary>Follows the data API of one relay and prints one line per slot once it is final (posted or missed).</summary>
public sealed class SlotMonitor(HttpClient data, IReadOnlyList<DevnetBuilder> builders, TextWriter output)
{
    readonly HashSet<ulong> _printed = [];
    public int Printed => _printed.Count;

    public static string Eth(BigInteger wei) => UnitConversion.Convert.FromWei(wei).ToString("0.##########", CultureInfo.InvariantCulture) + " ETH";

    string Name(string? address)
    {
        if (address is null) return "-";
        var b = Address.TryParse(address, out var a) ? builders.FirstOrDefault(x => x.Address == a) : null;
        return b is null ? Short(address) : $"{b.Name} ({b.StrategyName})";
    }

    static string Short(string a) => a.Length > 12 ? a[..8] + "…" + a[^4..] : a;

    public async Task<List<SlotInfo>> RecentAsync(int limit, CancellationToken ct)
    {
        using var doc = JsonDocument.Parse(await data.GetStringAsync($"relay/v1/data/slots?limit={limit}", ct));
        return [.. doc.RootElement.GetProperty("slots").EnumerateArray().Select(SlotInfo.Parse)];
    }

    public async Task<SlotInfo?> GetAsync(ulong slot, CancellationToken ct)
    {
        using var r = await data.GetAsync($"relay/v1/data/slots/{slot}", ct);
        if (!r.IsSuccessStatusCode) return null;
        using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync(ct));
        return SlotInfo.Parse(doc.RootElement);
    }

    public void Print(SlotInfo x)
    {
        var outcome = x.Status == "posted" ? $"L1 posted {Short(x.L1TxHash ?? "?")}" : $"missed: {x.MissedReason ?? "no reason given"}";
        var own = x.ProposedHash is not null && x.WinnerHash is not null && x.ProposedHash != x.WinnerHash ? " (proposer's own block)" : "";
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"slot {x.Slot,6}  proposer {Short(x.Proposer)}  bids {x.BidCount,3}  winner {Name(x.WinnerBuilder),-24}  price {Eth(x.Price),-18}  {outcome}{own}"));
    }

    /// <summary>Prints slots as they become final; with a range, returns once every slot in it is final.</summary>
    public async Task FollowAsync((ulong First, ulong Last)? range, CancellationToken ct)
    {
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                var recent = await RecentAsync(32, ct);
                foreach (var x in recent.Where(x => x.Final).OrderBy(x => x.Slot))
                {
                    if (range is { } r0 && (x.Slot < r0.First || x.Slot > r0.Last)) continue;
                    if (_printed.Add(x.Slot)) Print(x);
                }
                if (range is { } r && _printed.Count(p => p >= r.First && p <= r.Last) == (int)(r.Last - r.First + 1)) return;
                // A slot that scrolled out of the recent list: ask for it directly.
                if (range is { } r2 && recent.Count > 0 && recent.Min(x => x.Slot) > r2.First)
                    for (var sl = r2.First; sl <= r2.Last && sl < recent.Min(x => x.Slot); sl++)
                        if (!_printed.Contains(sl) && await GetAsync(sl, ct) is { Final: true } old && _printed.Add(sl)) Print(old);
            }
            catch (Exception e) when (e is HttpRequestException or JsonException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                // the relay is busy or restarting: try again
            }
            await Task.Delay(250, ct);
        }
    }

    /// <summary>Waits until no recent slot is proposed but not yet posted (the relays' poster has drained).</summary>
    public async Task WaitNoneProposedAsync(TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if (!(await RecentAsync(40, ct)).Any(x => x.Status == "proposed")) return;
            }
            catch (HttpRequestException) { }
            await Task.Delay(300, ct);
        }
    }
}
