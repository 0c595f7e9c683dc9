using System.Net.Http.Headers;
using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.L1;

namespace PbsMarket.Cli.Devnet;

/// <summary>
/// `pbs devnet --junk-heads`: one proposer of the set also announces junk heads, as the issue-13 attacker did:
/// every slot, for each of its own slots 2 to 16 slots ahead, a self-made empty block on each relay's current head,
/// and a block for its next own slot on a made-up parent. The relays must refuse them all (future_slot, stale_parent, …)
/// and the market must go on posting every slot. Each answer is logged (junk-heads.log); a junk head that a relay
/// adopts is counted and printed.
/// </summary>
internal sealed class JunkHeads(DeployedMarket d, ProtocolKey proposer, InboxClient inbox, IReadOnlyList<string> relays, SlotClock clock,
    Action<string> log)
{
    readonly Eip712Domain _domain = Eip712Domain.PbsMarket(d.L1ChainId, Address.Parse(d.Inbox));
    public int Sent { get; private set; }
    public int Adopted { get; private set; }

    public async Task RunAsync(CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var current = clock.CurrentSlot;
                // The seeded schedule (protocol v2) as L1 draws it: which of the next slots are this proposer's.
                var own = new HashSet<ulong>();
                for (var s = current; s <= current + 16; s++)
                {
                    try { if (await inbox.ProposerForSlotAsync(s, ct) == proposer.Address) own.Add(s); }
                    catch (Exception e) when (e is not OperationCanceledException) { log($"schedule read failed: {e.Message}"); }
                }
                foreach (var relay in relays)
                {
                    var head = await HeadAsync(http, relay, ct);
                    if (head is null) continue;
                    for (var s = current + 2; s <= current + 16; s++)
                        if (own.Contains(s))
                            await SendAsync(http, relay, Junk(s, head.Value.Hash, head.Value.Number + 1), $"own slot {s} ({s - current} ahead) on the head", ct);
                    // Its next own slot on a made-up parent, before that slot's auction closes. (A second header for a slot it has
                    // already proposed would be equivocation: protocol v2 slashes it on L1 and empties its remaining slots,
                    // which the equivocation tests show; this option shows junk that breaks no signature rule.)
                    if (own.Contains(current + 1) && clock.NowMs + 300 < clock.AuctionClosesMs(current + 1))
                        await SendAsync(http, relay, Junk(current + 1, Keccak.Hash(BitConverter.GetBytes(current)), head.Value.Number + 1), $"own slot {current + 1} on a made-up parent", ct);
                }
                var next = clock.StartMs(clock.CurrentSlot + 1) - clock.NowMs;
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(next, clock.SlotMs) + 50), ct);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    byte[] Junk(ulong slot, Hash32 parent, ulong number)
    {
        var header = new Header(d.L2ChainId, slot, number, parent, clock.StartMs(slot), 30_000_000, 0, Keccak.Hash(PayloadCodec.Empty),
            proposer.Address, proposer.Address, 0);
        var hash = Eip712.HashStruct(header);
        return Wire.ToUtf8(new HeadAnnouncement(header, proposer.Sign(Eip712.Digest(_domain, hash)),
            proposer.Sign(Eip712.Digest(_domain, Proposal.Fallback(slot, hash))), PayloadCodec.Empty), Wire.WriteHeadAnnouncement);
    }

    static async Task<(Hash32 Hash, ulong Number)?> HeadAsync(HttpClient http, string relay, CancellationToken ct)
    {
        try
        {
            using var doc = JsonDocument.Parse(await http.GetStringAsync($"{relay}/relay/v1/proposer/head", ct));
            return (Hash32.Parse(doc.RootElement.GetProperty("hash").GetString()!), ulong.Parse(doc.RootElement.GetProperty("number").GetString()!, System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException or KeyNotFoundException or FormatException)
        {
            return null;
        }
    }

    async Task SendAsync(HttpClient http, string relay, byte[] body, string what, CancellationToken ct)
    {
        try
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var r = await http.PostAsync($"{relay}/relay/v1/proposer/heads", content, ct);
            var text = await r.Content.ReadAsStringAsync(ct);
            Sent++;
            var adopted = r.IsSuccessStatusCode && text.Contains("\"adopted\":true", StringComparison.Ordinal);
            if (adopted) Adopted++;
            log($"{relay} {what}: {(int)r.StatusCode} {(adopted ? "ADOPTED" : text.Length > 160 ? text[..160] : text)}");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            log($"{relay} {what}: no answer ({e.Message})");
        }
    }
}
