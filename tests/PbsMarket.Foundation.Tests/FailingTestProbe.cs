namespace PbsMarket.Foundation.Tests;

/// <summary>
/// Proves a failing test fails the run: scripts/test.sh --self-check runs this with
/// PBS_PROBE_FAILURE=1 and expects a non-zero exit and a "1 failed" summary. Without the variable it
/// passes, so the normal suite stays green.
/// </summary>
public sealed class FailingTestProbe
{
    [Fact]
    public void Fails_only_when_asked_to()
    {
        if (Environment.GetEnvironmentVariable("PBS_PROBE_FAILURE") == "1")
            throw new InvalidOperationException("deliberate failure requested by PBS_PROBE_FAILURE=1");
    }
}
