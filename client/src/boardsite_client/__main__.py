from boardsite_client.cli import main

main()
