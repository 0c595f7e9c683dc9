using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PbsMarket.Proposer;

/// <summary>Hosts a <see cref="ProposerClient"/> for the lifetime of the host.</summary>
public sealed class ProposerService(ProposerClient client, ILogger<ProposerService> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await client.StartAsync(stoppingToken);
            await client.RunAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
        catch (SigningJournalException e)
        {
            log.LogCritical("refusing to run: {Error}", e.Message);
            throw;
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await client.DisposeAsync();
    }
}

public static class ProposerServiceCollectionExtensions
{
    /// <summary>Registers the proposer client (a singleton, also reachable for its <see cref="ProposerClient.Metrics"/>) and the
    /// hosted service that runs it.</summary>
    public static IServiceCollection AddProposer(this IServiceCollection services, ProposerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Resolve();
        services.AddSingleton(options);
        services.AddSingleton(sp => new ProposerClient(options, sp.GetService<ILoggerFactory>()));
        services.AddHostedService<ProposerService>();
        return services;
    }
}

/// <summary>A ready host for <c>pbs proposer</c>: configuration from appsettings, environment variables (<c>PBS_Proposer__…</c>) and
/// command-line arguments (<c>--Proposer:DataDir=…</c>), section <c>Proposer</c>.</summary>
public static class ProposerHost
{
    public static IHost Build(string[] args, Action<HostApplicationBuilder>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(args);
        builder.Configuration.AddEnvironmentVariables("PBS_");
        builder.Configuration.AddCommandLine(args);
        configure?.Invoke(builder);
        builder.Services.AddProposer(ProposerOptions.FromConfiguration(builder.Configuration));
        return builder.Build();
    }
}
