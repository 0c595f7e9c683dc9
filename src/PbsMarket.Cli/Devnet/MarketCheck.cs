using System.Globalization;
using System.Numerics;
using System.Text.Json;
using System.Text.Json.Nodes;
using PbsMarket.Core;
using PbsMarket.L1;

namespace PbsMarket.Cli.Devnet;

/// <summary>
/// What `pbs devnet --slots N` checks at the end: every slot of the run is posted on L1 or missed with a reason; the
/// HeaderPosted events agree with the data API (header, builder, price); each builder's escrow went down, and each
/// proposer's earnings went up, by exactly the prices of the headers posted for them.
/// </summary>
public sealed class MarketCheck
{
    public List<string> Problems { get; } = [];
    public List<SlotInfo> Slots { get; } = [];
    public Dictionary<string, int> MissedReasons { get; } = [];
    public BigInteger TotalPaid { get; set; }
    /// <summary>Wins and payments on L1 in the slots of the run.</summary>
    public Dictionary<Address, (int Wins, BigInteger Paid)> PerBuilder { get; } = [];
    /// <summary>Bids in the bids roots of the slots of the run, per builder.</summary>
    public int BidsOf(Address builder) => Slots.Sum(x => x.BidsByBuilder.GetValueOrDefault(builder));
    public int Posted { get; set; }
    public int Missed { get; set; }
    public ulong First { get; set; }
    public ulong Last { get; set; }
    public bool Ok => Problems.Count == 0;

    public static async Task<MarketCheck> RunAsync(HttpClient data, InboxClient inbox, DeployedMarket d, ulong first, ulong last,
        IReadOnlyList<DevnetBuilder> builders, IReadOnlyList<Address> proposers, BigInteger collateral, Address relay, CancellationToken ct)
    {
        var c = new MarketCheck { First = first, Last = last };
        var monitor = new SlotMonitor(data, builders, TextWriter.Null);
        var events = await inbox.GetHeaderPostedAsync(d.DeployedAtBlock, null, ct);
        var bySlot = events.GroupBy(e => e.Slot).ToDictionary(g => g.Key, g => g.ToList());
        foreach (var (slot, list) in bySlot.Where(kv => kv.Value.Count > 1)) c.Problems.Add($"slot {slot}: {list.Count} HeaderPosted events");

        for (var s = first; s <= last; s++)
        {
            var x = await monitor.GetAsync(s, ct);
            if (x is null)
            {
                // The relays opened no auction for it (e.g. they could not read the proposer set from L1 in time).
                bySlot.TryGetValue(s, out var orphan);
                if (orphan is { Count: > 0 }) { c.Problems.Add($"slot {s}: posted on L1 (header {orphan[0].HeaderHash}) but unknown to the data API"); continue; }
                const string reason = "no auction on the relays";
                c.Missed++;
                c.MissedReasons[reason] = c.MissedReasons.GetValueOrDefault(reason) + 1;
                continue;
            }
            c.Slots.Add(x);
            bySlot.TryGetValue(s, out var ev);
            var e = ev?.FirstOrDefault();
            switch (x.Status)
            {
                case "posted":
                    c.Posted++;
                    if (e is null) { c.Problems.Add($"slot {s}: posted per the data API (tx {x.L1TxHash}) but no HeaderPosted event on L1"); break; }
                    if (!string.Equals(e.HeaderHash.ToString(), x.ProposedHash, StringComparison.OrdinalIgnoreCase))
                        c.Problems.Add($"slot {s}: L1 holds header {e.HeaderHash}, the data API says {x.ProposedHash}");
                    if (x.WinnerHash is not null && string.Equals(x.WinnerHash, x.ProposedHash, StringComparison.OrdinalIgnoreCase))
                    {
                        if (e.Price != x.Price) c.Problems.Add($"slot {s}: L1 price {e.Price}, data API price {x.Price}");
                        if (!string.Equals(e.Builder.ToString(), x.WinnerBuilder, StringComparison.OrdinalIgnoreCase))
                            c.Problems.Add($"slot {s}: L1 builder {e.Builder}, data API winner {x.WinnerBuilder}");
                    }
                    if (!string.Equals(e.Proposer.ToString(), x.Proposer, StringComparison.OrdinalIgnoreCase))
                        c.Problems.Add($"slot {s}: L1 proposer {e.Proposer}, data API proposer {x.Proposer}");
                    break;
                case "missed":
                    c.Missed++;
                    var reason = string.IsNullOrWhiteSpace(x.MissedReason) ? null : x.MissedReason;
                    if (reason is null) c.Problems.Add($"slot {s}: missed without a reason");
                    c.MissedReasons[reason ?? "(none)"] = c.MissedReasons.GetValueOrDefault(reason ?? "(none)") + 1;
                    if (e is not null) c.Problems.Add($"slot {s}: missed per the data API but L1 holds header {e.HeaderHash}");
                    break;
                default:
                    c.Problems.Add($"slot {s}: neither posted nor missed (status {x.Status})");
                    break;
            }
        }

        // The summary's wins and payments: the slots of the run only (the market runs before the first slot too, and the
        // relays may post a slot after the last one before they stop).
        foreach (var e in events.Where(e => e.Slot >= first && e.Slot <= last))
        {
            c.TotalPaid += e.Price;
            var cur = c.PerBuilder.GetValueOrDefault(e.Builder);
            c.PerBuilder[e.Builder] = (cur.Wins + 1, cur.Paid + e.Price);
        }
        // Balances: all posted headers since the deployment (a slot outside the run moved money too).
        foreach (var b in builders)
        {
            // Collateral is allocated per relay (protocol v2): the devnet's builders deposit at its one relay address.
            var balance = await inbox.EscrowBalanceAsync(b.Address, relay, ct);
            var paid = events.Where(e => e.Builder == b.Address && e.Relay == relay).Aggregate(BigInteger.Zero, (a, e) => a + e.Price);
            if (await inbox.IsBarredAsync(b.Address, ct)) c.Problems.Add($"{b.Name}: barred on L1 (a settlement its collateral could not cover)");
            if (collateral - balance != paid) c.Problems.Add($"{b.Name}: escrow went from {collateral} to {balance} wei, but the posted prices add up to {paid}");
        }
        foreach (var p in proposers)
        {
            var earned = await inbox.EarningsOfAsync(p, ct);
            var due = events.Where(e => e.Proposer == p).Aggregate(BigInteger.Zero, (a, e) => a + e.Price);
            if (earned != due) c.Problems.Add($"proposer {p}: earnings {earned} wei, but the posted prices add up to {due}");
        }
        return c;
    }

    public void Print(TextWriter o, IReadOnlyList<DevnetBuilder> builders, TimeSpan elapsed)
    {
        var n = (int)(Last - First + 1);
        o.WriteLine();
        o.WriteLine($"summary: slots {First}..{Last}: {Posted} posted, {Missed} missed{(MissedReasons.Count == 0 ? "" : " (" + string.Join(", ", MissedReasons.Select(kv => $"{kv.Key}: {kv.Value}")) + ")")}");
        o.WriteLine($"  total paid on L1 {SlotMonitor.Eth(TotalPaid)} (the headers posted for slots {First}..{Last})");
        foreach (var b in builders)
        {
            var (wins, paid) = PerBuilder.GetValueOrDefault(b.Address);
            var st = b.Stats is { } x ? $"; over its whole run {x.BidsAccepted} bids accepted, {x.BidsRefused} refused, inclusion verified {x.InclusionVerified}, failed {x.InclusionFailed}" : "; (no stats file)";
            o.WriteLine($"  {b.Name} ({b.StrategyName}): {wins} wins on L1, paid {SlotMonitor.Eth(paid)}, {BidsOf(b.Address)} bids in these slots{st}");
        }
        var bids = Slots.Sum(x => x.BidCount);
        o.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  measured: {n / elapsed.TotalSeconds:0.00} slots/s, {(double)bids / Math.Max(1, Slots.Count):0.0} bids per slot"));
        if (Ok) o.WriteLine("  checks: ok (every slot posted or missed with a reason; L1 events match the data API; escrow and earnings moved by exactly the prices)");
        else
        {
            o.WriteLine($"  checks: FAILED ({Problems.Count})");
            foreach (var p in Problems) o.WriteLine($"    - {p}");
        }
    }

    public string ToJson(IReadOnlyList<DevnetBuilder> builders, TimeSpan elapsed) => new JsonObject
    {
        ["ok"] = Ok,
        ["first_slot"] = First.ToString(CultureInfo.InvariantCulture),
        ["last_slot"] = Last.ToString(CultureInfo.InvariantCulture),
        ["posted"] = Posted,
        ["missed"] = Missed,
        ["missed_reasons"] = new JsonObject(MissedReasons.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
        ["total_paid_wei"] = TotalPaid.ToString(),
        ["bids"] = Slots.Sum(x => x.BidCount),
        ["seconds"] = elapsed.TotalSeconds,
        ["builders"] = new JsonArray([.. builders.Select(b => (JsonNode)new JsonObject
        {
            ["name"] = b.Name, ["strategy"] = b.StrategyName, ["address"] = b.Address.ToString(),
            ["wins"] = PerBuilder.GetValueOrDefault(b.Address).Wins, ["paid_wei"] = PerBuilder.GetValueOrDefault(b.Address).Paid.ToString(),
            ["bids"] = BidsOf(b.Address),
            // the builder's own counters over its whole run (from its stats file), null when it wrote none
            ["bids_accepted"] = b.Stats?.BidsAccepted, ["bids_refused"] = b.Stats?.BidsRefused,
            ["inclusion_verified"] = b.Stats?.InclusionVerified, ["inclusion_failed"] = b.Stats?.InclusionFailed,
        })]),
        ["problems"] = new JsonArray([.. Problems.Select(p => (JsonNode)p)]),
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}
