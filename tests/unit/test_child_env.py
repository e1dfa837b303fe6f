"""What a child process (docker, redis-cli) may inherit: nothing secret."""

from __future__ import annotations

from clusterops.core.child_env import child_env

# What Pulumi's language host and CLI put into the program's environment, among others.
PROGRAM_ENVIRONMENT = {
    "PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8",
    "PULUMI_CONFIG": '{"alphapulse-redis-cluster:password": "s3cret"}',
    "PULUMI_CONFIG_SECRET_KEYS": '["alphapulse-redis-cluster:password"]',
    "PULUMI_CONFIG_PASSPHRASE": "passphrase", "PULUMI_ACCESS_TOKEN": "pul-token",
    "AWS_SECRET_ACCESS_KEY": "aws", "REDISCLI_AUTH": "s3cret", "DOCKER_CONTEXT": "elsewhere",
    "SSH_AUTH_SOCK": "/tmp/agent.sock",
}


def test_only_the_allow_list_and_the_extras_reach_a_child():
    env = child_env({"DOCKER_HOST": "unix:///var/run/docker.sock"}, PROGRAM_ENVIRONMENT)
    assert env == {"PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8",
                   "SSH_AUTH_SOCK": "/tmp/agent.sock",
                   "DOCKER_HOST": "unix:///var/run/docker.sock"}


def test_no_value_of_a_secret_survives():
    env = child_env(environ=PROGRAM_ENVIRONMENT)
    for secret in ("s3cret", "passphrase", "pul-token", "aws"):
        assert not any(secret in value for value in env.values())
