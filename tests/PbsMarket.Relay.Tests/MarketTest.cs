using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests;

/// <summary>A test class with its own market (deployed contracts, Redis key space, database) and one relay.</summary>
public abstract class MarketTest(TestServers servers, long slotMs = TestMarket.SlotMs) : IAsyncLifetime
{
    protected TestServers Servers { get; } = servers;
    protected TestMarket Market { get; private set; } = null!;
    protected RelayInstance Relay { get; private set; } = null!;

    public virtual async ValueTask InitializeAsync()
    {
        Market = await TestMarket.StartAsync(Servers, slotMs: slotMs);
        Relay = await Market.StartRelayAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await Market.DisposeAsync();
        GC.SuppressFinalize(this);
    }

    /// <summary>The body of POST /relay/v1/proposer/proposals, signed by <paramref name="proposer"/>.</summary>
    protected byte[] ProposalBody(ulong slot, Hash32 headerHash, ProtocolKey proposer) =>
        Wire.ToUtf8(new ProposalSubmission(slot, headerHash, proposer.Sign(Eip712.Digest(Market.Domain, new Proposal(slot, headerHash)))), Wire.WriteProposalSubmission);
}
