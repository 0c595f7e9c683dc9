using System.Globalization;
using System.Text.Json;
using PbsMarket.L1;
using PbsMarket.L2;

namespace PbsMarket.Cli.Devnet;

/// <summary>
/// What `pbs devnet --slots N` checks of the L2 chain: every header L1 holds for a slot of the run is a block the L2 node
/// executed from L1, with no transaction skipped (the relays simulated every bid), and its transaction count.
/// </summary>
public sealed class L2Check
{
    public List<string> Problems { get; } = [];
    public int Blocks { get; private set; }
    public long Transactions { get; private set; }
    public string Summary => string.Create(CultureInfo.InvariantCulture,
        $"L2: {Blocks} block(s) of the run executed by the L2 node from L1, {Transactions} transaction(s){(Problems.Count == 0 ? ", none skipped" : $"; {Problems.Count} problem(s)")}");

    public static async Task<L2Check> RunAsync(string l2Rpc, InboxClient inbox, DeployedMarket d, ulong first, ulong last, CancellationToken ct)
    {
        var c = new L2Check();
        using var rpc = new JsonRpcClient(l2Rpc, TimeSpan.FromSeconds(5));
        var posted = (await inbox.GetHeaderPostedAsync(d.DeployedAtBlock, null, ct)).Where(e => e.Slot >= first && e.Slot <= last).ToList();
        var deadline = DateTime.UtcNow.AddSeconds(20); // the node polls L1 every 100 ms; L1 makes a block a second
        foreach (var e in posted)
        {
            JsonElement b;
            while (true)
            {
                b = await rpc.CallAsync("pbs_blockOfHeader", [e.HeaderHash.ToString()], ct);
                if ((b.ValueKind == JsonValueKind.Object && b.GetProperty("on_l1").GetBoolean()) || DateTime.UtcNow > deadline) break;
                await Task.Delay(200, ct);
            }
            if (b.ValueKind != JsonValueKind.Object || !b.GetProperty("on_l1").GetBoolean())
            {
                c.Problems.Add($"slot {e.Slot}: L1 holds header {e.HeaderHash}, but the L2 node has not executed it from L1");
                continue;
            }
            c.Blocks++;
            c.Transactions += b.GetProperty("tx_count").GetInt32();
            foreach (var skipped in b.GetProperty("skipped").EnumerateArray())
                c.Problems.Add($"slot {e.Slot}: transaction {skipped.GetProperty("index").GetInt32()} of block {Quantity.ToUInt64(b.GetProperty("number"))} was skipped: {skipped.GetProperty("reason").GetString()}");
        }
        return c;
    }
}
