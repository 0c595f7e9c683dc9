namespace PbsMarket.Foundation.Tests;

/// <summary>
/// Proves the harness tells the truth: scripts/test.sh's self-check runs these with PBS_PROBE_FAILURE=1 (a
/// failing test must fail the run and count 1 failed) and with PBS_PROBE_CRASH=1 (a test host that dies must be
/// reported as broken, with the test it never ran named). Without the variables they pass, so the normal suite
/// stays green.
/// </summary>
public sealed class FailingTestProbe
{
    [Fact]
    public void Fails_only_when_asked_to()
    {
        if (Environment.GetEnvironmentVariable("PBS_PROBE_FAILURE") == "1")
            throw new InvalidOperationException("deliberate failure requested by PBS_PROBE_FAILURE=1");
    }

    [Fact]
    public void Crashes_the_test_host_only_when_asked_to()
    {
        if (Environment.GetEnvironmentVariable("PBS_PROBE_CRASH") == "1")
            Environment.FailFast("deliberate test host crash requested by PBS_PROBE_CRASH=1");
    }

    [Fact]
    public void Runs_after_the_crash_probe_when_it_does_not_crash()
    {
        // Only here so that a crash leaves a test never run, which the harness must name.
    }
}
