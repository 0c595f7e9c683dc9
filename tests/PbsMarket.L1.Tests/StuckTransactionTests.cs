using PbsMarket.Core;
using PbsMarket.Testing;

namespace PbsMarket.L1.Tests;

/// <summary>Replacement of a transaction that is not mined, and resolution of a journaled one after a restart
/// (each on its own anvil with automine switched off).</summary>
public sealed class StuckTransactionTests(TestServers servers)
{
    /// <summary>A journal that also remembers every entry ever saved (to see all signed versions afterwards).</summary>
    sealed class RecordingJournal : IPosterJournal
    {
        readonly InMemoryPosterJournal _inner = new();
        public readonly List<PosterJournalEntry> Saved = [];
        public Task<PosterJournalEntry?> LoadAsync() => _inner.LoadAsync();
        public Task SaveAsync(PosterJournalEntry entry) { lock (Saved) Saved.Add(entry); return _inner.SaveAsync(entry); }
        public Task ClearAsync() => _inner.ClearAsync();
        public PosterJournalEntry? Last { get { lock (Saved) return Saved.LastOrDefault(); } }
    }

    static async Task<(Market Market, ProtocolKey Builder)> SetUpAsync(AnvilNode anvil)
    {
        var market = await Market.DeployAsync(anvil, AnvilNode.DevKeys[0], Market.DevProposers(1, 2));
        await Deployer.DepositAsync(anvil.RpcUrl, market.Deployed, AnvilNode.DevKeys[5], BigInteger.Pow(10, 19), Market.Relay.Address);
        await anvil.RpcAsync("evm_setAutomine", [false]);
        return (market, ProtocolKey.FromHex(AnvilNode.DevKeys[5]));
    }

    static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, int timeoutMs = 15_000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(what);
            await Task.Delay(50);
        }
    }

    static async Task<bool> InPoolAsync(AnvilNode anvil, string hash) =>
        (await anvil.RpcAsync("eth_getTransactionByHash", [hash])).ValueKind != System.Text.Json.JsonValueKind.Null;

    [Fact]
    public async Task A_stuck_transaction_is_replaced_with_higher_fees_and_exactly_one_version_lands()
    {
        var anvil = await servers.StartOwnAsync(new AnvilNode());
        var (market, builder) = await SetUpAsync(anvil);
        var journal = new RecordingJournal();
        var options = new L1PosterOptions { PollInterval = TimeSpan.FromMilliseconds(50), ReplaceAfter = TimeSpan.FromMilliseconds(700), ReceiptTimeout = TimeSpan.FromSeconds(30) };
        await using var poster = new L1Poster(market.Client, AnvilNode.DevKeys[6], journal, options);
        var nonceBefore = await market.NonceAsync(poster.Sender);

        var item = market.Item(10, 1, Hash32.Zero, builder, 1000);
        var posting = poster.PostAsync([item]);
        await WaitUntilAsync(async () => journal.Last is { Transactions.Count: >= 2 } e && await InPoolAsync(anvil, e.Transactions[1].Hash), "a replacement in the pool");

        var entry = journal.Last!;
        var (original, replacement) = (entry.Transactions[0], entry.Transactions[1]);
        Assert.NotEqual(original.Hash, replacement.Hash);
        Assert.Equal(nonceBefore, entry.Nonce);
        Assert.True(replacement.MaxFeePerGas * 8 >= original.MaxFeePerGas * 9, "maxFee bumped by >= 12.5%");
        Assert.True(replacement.MaxPriorityFeePerGas * 8 >= original.MaxPriorityFeePerGas * 9, "priority fee bumped by >= 12.5%");
        var pooled = await anvil.RpcAsync("eth_getTransactionByHash", [replacement.Hash]);
        Assert.Equal(entry.Nonce, Convert.ToUInt64(pooled.GetProperty("nonce").GetString(), 16));
        Assert.Equal(replacement.MaxFeePerGas, BigInteger.Parse("0" + pooled.GetProperty("maxFeePerGas").GetString()![2..], System.Globalization.NumberStyles.HexNumber));

        await anvil.RpcAsync("evm_mine", []);
        var outcome = Assert.Single(await posting);
        Assert.Equal(PostStatus.Posted, outcome.Status);

        var hashes = journal.Saved.SelectMany(e => e.Transactions).Select(t => t.Hash).Distinct().ToList();
        Assert.True(hashes.Count >= 2);
        var landed = new List<string>();
        foreach (var h in hashes)
            if ((await anvil.RpcAsync("eth_getTransactionReceipt", [h])).ValueKind != System.Text.Json.JsonValueKind.Null) landed.Add(h);
        Assert.Equal(outcome.TxHash, Assert.Single(landed));
        Assert.Equal(nonceBefore + 1, await market.NonceAsync(poster.Sender));
        Assert.Equal(item.Header.Hash(), await market.Client.HeaderOfSlotAsync(10));
        Assert.Null(await journal.LoadAsync());
    }

    [Fact]
    public async Task A_restarted_poster_resolves_the_journaled_transaction_instead_of_sending_a_new_one()
    {
        var anvil = await servers.StartOwnAsync(new AnvilNode());
        var (market, builder) = await SetUpAsync(anvil);
        var path = Path.Combine(anvil.Dir, "poster-journal.json");
        var options = new L1PosterOptions { PollInterval = TimeSpan.FromMilliseconds(50), ReplaceAfter = TimeSpan.FromHours(1), ReceiptTimeout = TimeSpan.FromSeconds(30) };
        var item = market.Item(10, 1, Hash32.Zero, builder, 1000);

        var poster1 = new L1Poster(market.Client, AnvilNode.DevKeys[6], new FilePosterJournal(path), options);
        var nonceBefore = await market.NonceAsync(poster1.Sender);
        var posting = poster1.PostAsync([item]);
        PosterJournalEntry? entry = null;
        await WaitUntilAsync(async () => (entry = await new FilePosterJournal(path).LoadAsync()) is not null && await InPoolAsync(anvil, entry.Transactions[0].Hash),
            "the journaled transaction in the pool");
        await poster1.DisposeAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => posting);

        // The node forgets it too: only the journal can bring it back.
        var hash = Assert.Single(entry!.Transactions).Hash;
        await anvil.RpcAsync("anvil_dropTransaction", [hash]);
        Assert.False(await InPoolAsync(anvil, hash));

        await using var poster2 = new L1Poster(market.Client, AnvilNode.DevKeys[6], new FilePosterJournal(path), options);
        var resumed = poster2.PostAsync([item]);
        await WaitUntilAsync(() => InPoolAsync(anvil, hash), "the journaled transaction rebroadcast");
        var pool = await anvil.RpcAsync("txpool_content", []);
        Assert.Single(pool.GetProperty("pending").EnumerateObject().SelectMany(a => a.Value.EnumerateObject()));
        await anvil.RpcAsync("evm_mine", []);

        var outcome = Assert.Single(await resumed);
        Assert.Equal(PostStatus.Posted, outcome.Status);
        Assert.Equal(hash, outcome.TxHash);
        Assert.Equal(nonceBefore + 1, await market.NonceAsync(poster2.Sender));
        Assert.Equal(nonceBefore + 1, poster2.NextNonce);
        Assert.False(File.Exists(path));
        Assert.Equal(item.Header.Hash(), await market.Client.HeaderOfSlotAsync(10));
    }
}
