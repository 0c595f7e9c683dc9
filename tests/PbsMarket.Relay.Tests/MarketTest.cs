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

    public virtual async ValueTask DisposeAsync()
    {
        await Market.DisposeAsync();
        GC.SuppressFinalize(this);
    }

    /// <summary>The body of POST /relay/v1/proposer/proposals (Proposal v2 with the relay's settlement for its winner), signed by <paramref name="proposer"/>.</summary>
    protected Task<byte[]> ProposalBodyAsync(ulong slot, Hash32 headerHash, ProtocolKey proposer) =>
        Market.ProposalBodyAsync(Relay.Url, slot, headerHash, proposer);

    /// <summary>A proposal body that is only well formed: the fallback settlement (price 0, no bids root, no relay),
    /// signed by <paramref name="proposer"/>. For edge and fuzz cases, where the relay must refuse it before any settlement.</summary>
    protected byte[] ProposalBody(ulong slot, Hash32 headerHash, ProtocolKey proposer) =>
        Wire.ToUtf8(new ProposalSubmission(slot, headerHash, proposer.Sign(Eip712.Digest(Market.Domain, Proposal.Fallback(slot, headerHash)))), Wire.WriteProposalSubmission);
}
